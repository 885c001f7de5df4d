"""``timm:<name>``: any timm model, pretrained from the hub cache or from a local weights file."""

from __future__ import annotations

import torch

from oddscope.core.models.encoders.base import Encoder
from oddscope.core.models.encoders.common import file_description
from oddscope.core.models.registry import EncoderError

PREFIX = "timm:"


def load(spec: str, weights: str | None, device: torch.device, fast: bool) -> Encoder:
    """The registry's loader for the ``timm:`` family."""
    return load_timm(spec, spec[len(PREFIX):], weights, device, fast)


def timm_data_config(config: dict, spec: str) -> dict:
    """Encoder arguments (square input size, mean, std, interpolation) from a timm data config."""
    _, height, width = config["input_size"]
    if height != width:
        raise EncoderError(f"{spec}: non-square input size {height}x{width} is not supported")
    return {"input_size": height, "mean": config["mean"], "std": config["std"],
            "interpolation": config.get("interpolation", "bicubic")}


def load_timm(spec: str, name: str, weights: str | None, device: torch.device, fast: bool) -> Encoder:
    """The timm model ``name``: hub weights, or the local ``weights`` file loaded strictly."""
    import timm
    from timm.data import resolve_data_config

    if not timm.is_model(name):
        raise EncoderError(f"unknown timm model {name!r}; list them with "
                           "`python -c \"import timm; print(timm.list_models())\"`")
    if weights is None:
        try:
            model = timm.create_model(name, pretrained=True, num_classes=0)
        except Exception as err:  # offline hub, missing cache, no weights: all mean the same to the user
            raise EncoderError(
                f"could not load pretrained weights for timm model {name!r} ({type(err).__name__}: "
                f"{err}). Offline, either pass a local weights file (--weights FILE) or pre-populate "
                "the Hugging Face / torch hub cache on a connected machine "
                f"(`python -c \"import timm; timm.create_model('{name}', pretrained=True)\"`)."
            ) from err
        source = model.pretrained_cfg.get("hf_hub_id") or model.pretrained_cfg.get("url") or "timm"
        description = f"timm pretrained weights for {name!r} ({source}, from the hub cache or a download)"
    else:
        model = timm.create_model(name, pretrained=False, num_classes=0)
        model.load_state_dict(_timm_file_state(model, weights, spec), strict=True)
        description = file_description(weights)
    return Encoder(spec=spec, name=name, weights=description, model=model, device=device,
                   fast=fast, traceable=True, library=f"timm {timm.__version__}",
                   **timm_data_config(resolve_data_config({}, model=model), spec))


def _timm_file_state(model: torch.nn.Module, path: str, spec: str) -> dict:
    """Read a weights file for a headless timm model, failing with a clear message on any mismatch.

    Accepts a state dict or a checkpoint dict ("state_dict"/"model"; EMA weights
    preferred when present), .pth or .safetensors, with "module." prefixes.
    Classifier tensors are dropped since the model has no classifier; every
    other tensor must match.
    """
    from timm.models import load_state_dict

    try:
        state = load_state_dict(path, weights_only=True)
    except Exception as err:
        raise EncoderError(f"could not read {path} as a PyTorch/safetensors weights file "
                           f"({type(err).__name__}: {err})") from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise EncoderError(f"{path} is not a state dict of tensors")
    expected = model.state_dict()
    heads = model.pretrained_cfg.get("classifier") or ()
    heads = (heads,) if isinstance(heads, str) else tuple(heads)
    state = {k: v for k, v in state.items()
             if k in expected or not any(k.startswith(h + ".") for h in heads)}
    missing = sorted(expected.keys() - state.keys())
    unexpected = sorted(state.keys() - expected.keys())
    wrong = sorted(k for k in expected.keys() & state.keys() if state[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        raise EncoderError(
            f"{path} does not fit {spec}: {len(missing)} missing tensors {missing[:3]}, "
            f"{len(unexpected)} unexpected {unexpected[:3]}, {len(wrong)} of other shape {wrong[:3]}. "
            "Is it the right file for this model?")
    return state
