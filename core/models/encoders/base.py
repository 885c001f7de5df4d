"""The :class:`Encoder` every family builds, its picklable :class:`Preprocess`, and the fast path.

* The fast path (``fast=True``) is a speed-up only.  On CPU the model is put in
  ``channels_last`` and traced + frozen with TorchScript on the first batch
  (freezing folds batch-norm into the convolutions); on a 2-core machine this
  is several times faster than eager.  The trace is checked against the eager
  model on a batch of another size; if tracing fails or disagrees, the encoder
  logs a warning and runs eager.  On CUDA the fast path is ``channels_last``
  with fp16 autocast.

On CPU, ``encode`` runs the network on chunks of ``Encoder.chunk`` images
(2 per torch thread) whatever the batch size: small chunks keep activations in
cache and were up to 2.5x faster than one forward over a batch of 32.

Threads: torch's default (one intra-op thread per core) is kept on purpose;
DataLoader workers get one thread each from torch, so decoding and the forward
pass share the cores without oversubscription.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from oddscope.core.models.encoders.common import RESAMPLE, ImageEncoderBase
from oddscope.core.models.registry import EncoderError

log = logging.getLogger(__name__)

# Fast-path features must agree with eager ones at least this well (cosine).
_TRACE_MIN_COSINE = 0.999
# On CPU a forward pass over a few images at a time beats one over the whole batch: on the
# 2-core dev machine, EfficientNet-Lite0 ran 81 images/s in chunks of 4 vs 56 in one batch
# of 32 (eager: 54 vs 21), as the activations of a small chunk stay in cache.
_CPU_IMAGES_PER_THREAD = 2


class Encoder(ImageEncoderBase):
    """Images in, feature vectors out, for one model on one device.

    Build with :func:`load_encoder`.  ``encode`` takes batches already resized
    by :meth:`preprocess` (``(B, S, S, 3)`` uint8) and does the normalisation
    itself, vectorised on the batch, so workers only decode and resize.
    """

    def __init__(self, *, spec: str, name: str, weights: str, model: torch.nn.Module,
                 input_size: int, mean, std, interpolation: str, device: torch.device,
                 fast: bool, traceable: bool, library: str, text_model=None, tokenizer=None):
        self.spec = spec
        self.name = name
        self.weights = weights
        self.input_size = int(input_size)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.interpolation = interpolation if interpolation in RESAMPLE else "bicubic"
        self.device = device
        self._library = library
        self._text_model = text_model
        self._tokenizer = tokenizer
        self._model = model.eval().to(device)
        self._channels_last = fast and device.type in ("cpu", "cuda")
        if self._channels_last:
            self._model.to(memory_format=torch.channels_last)
        self._autocast = fast and device.type == "cuda"
        # Images per forward pass (None: the whole batch); see _CPU_IMAGES_PER_THREAD.
        self.chunk = _CPU_IMAGES_PER_THREAD * torch.get_num_threads() if device.type == "cpu" else None
        self.traceable = traceable  # a fixed graph: TorchScript and OpenVINO can take it
        self._trace_pending = fast and traceable and device.type == "cpu"
        self._traced = None
        steps = [("channels_last", self._channels_last), ("trace+freeze", self._trace_pending),
                 ("fp16-autocast", self._autocast)]
        self.fast_path = "+".join(step for step, used in steps if used) or "eager"
        scale = torch.tensor(self.std, device=device).view(1, 3, 1, 1) * 255.0
        self._shift = torch.tensor(self.mean, device=device).view(1, 3, 1, 1) * 255.0
        self._inv_scale = 1.0 / scale
        with torch.inference_mode():
            probe = self._model(self._normalise(torch.zeros(1, self.input_size, self.input_size, 3,
                                                            dtype=torch.uint8)))
        if probe.ndim != 2:
            raise EncoderError(f"{spec}: the model outputs shape {tuple(probe.shape)}, not one "
                               "feature vector per image; use a model with a pooled feature head")
        self.dim = int(probe.shape[1])

    @property
    def model(self) -> torch.nn.Module:
        """The eager torch module (features out), e.g. for an export to another runtime."""
        return self._model

    @property
    def supports_text(self) -> bool:
        return self._text_model is not None

    def encode(self, batch: torch.Tensor | np.ndarray) -> np.ndarray:
        """``(B, S, S, 3)`` uint8 batch from :meth:`preprocess` -> ``(B, dim)`` float32."""
        if isinstance(batch, np.ndarray):
            batch = np.ascontiguousarray(batch)  # torch refuses negative strides
        x = torch.as_tensor(batch)
        self.check_batch(x.shape, x.dtype)
        if len(x) == 0:
            return np.empty((0, self.dim), np.float32)
        step = self.chunk or len(x)
        with torch.inference_mode(), self._autocast_context():
            features = [self._forward(self._normalise(x[i:i + step])) for i in range(0, len(x), step)]
        return np.ascontiguousarray(torch.cat(features).float().cpu().numpy())

    def eager_encode(self, batch: np.ndarray) -> np.ndarray:
        """The eager model on a ``(B, S, S, 3)`` uint8 batch: the reference every fast path is checked against."""
        x = torch.as_tensor(np.ascontiguousarray(batch))
        self.check_batch(x.shape, x.dtype)
        with torch.inference_mode():
            return self._model(self._normalise(x)).float().cpu().numpy()

    @property
    def stages(self) -> list[dict]:
        """The model's feature stages (timm's ``feature_info``: ``reduction``, ``num_chs``), input to output.

        Empty for a model that cannot return intermediate features; per-patch
        anomaly maps need them.
        """
        info = getattr(self._model, "feature_info", None)
        if info is None or not hasattr(self._model, "forward_intermediates"):
            return []
        return [dict(stage) for stage in (info.get_dicts() if hasattr(info, "get_dicts") else info)]

    def stage_features(self, batch: torch.Tensor | np.ndarray, indices: list[int]) -> list[torch.Tensor]:
        """``(B, S, S, 3)`` uint8 batch -> the feature maps ``(B, C, h, w)`` of the stages ``indices``.

        Runs the eager model (a trace only returns the pooled vector) and stops
        after the last stage asked for, so early stages cost a fraction of a
        full forward pass.
        """
        x = torch.as_tensor(np.ascontiguousarray(batch) if isinstance(batch, np.ndarray) else batch)
        with torch.inference_mode(), self._autocast_context():
            maps = self._model.forward_intermediates(self._normalise(x), indices=list(indices),
                                                     intermediates_only=True, stop_early=True)
        return [m.float() for m in maps]

    def encode_text(self, texts: list[str]) -> np.ndarray:
        """Text queries -> ``(N, dim)`` float32, L2-normalised like CLIP image features."""
        if not self.supports_text:
            raise NotImplementedError(
                f"encoder {self.spec!r} has no text tower; text queries need a CLIP encoder, "
                "e.g. 'clip:ViT-B-32/laion2b_s34b_b79k'")
        if isinstance(texts, str):
            texts = [texts]
        tokens = self._tokenizer(list(texts)).to(self.device)
        with torch.inference_mode(), self._autocast_context():
            features = F.normalize(self._text_model.encode_text(tokens).float(), dim=-1)
        return np.ascontiguousarray(features.cpu().numpy())

    def describe(self) -> dict:
        """JSON-serialisable record of what produced the features (for the project store).

        ``fast_path`` is the path in use when called; it only changes if the
        trace fails on the first batch, so record it after extraction.
        """
        return {
            "spec": self.spec,
            "name": self.name,
            "weights": self.weights,
            "dim": self.dim,
            "input_size": self.input_size,
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
            "resize": "whole image, no crop",
            "fast_path": self.fast_path,
            "device": str(self.device),
            "library": self._library,
            "runtime": f"torch {torch.__version__}",
        }

    def __repr__(self) -> str:
        return f"Encoder({self.spec!r}, dim={self.dim}, device={self.device}, fast_path={self.fast_path!r})"

    def _autocast_context(self):
        return torch.autocast(self.device.type, dtype=torch.float16, enabled=self._autocast)

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        # NHWC permuted to NCHW *is* channels_last in memory: no copy on the fast path.
        x = x.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float()
        if not self._channels_last:
            x = x.contiguous()
        return x.sub_(self._shift).mul_(self._inv_scale)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._trace_pending:
            self._trace_pending = False
            return self._trace(x)
        if self._traced is not None:
            try:
                return self._traced(x)
            except RuntimeError as err:
                self._fall_back(f"traced model failed on a batch of {len(x)}: {err}")
        return self._model(x)

    def _trace(self, x: torch.Tensor) -> torch.Tensor:
        """Trace + freeze on (a slice of) this batch, check against eager on another batch size.

        Tracing a 2-image slice costs far less than the full batch and runs as
        fast afterwards (measured); traces of these models generalise over the
        batch size, which the check on a 1-image batch confirms.
        """
        example, probe = (x[:2], x[:1]) if len(x) > 1 else (x, torch.cat([x, x]))
        try:
            with warnings.catch_warnings():
                # TorchScript is deprecated upstream but is still the fastest CPU path
                # measured here; correctness is checked numerically below instead of
                # by the (slow) check_trace.
                warnings.simplefilter("ignore", FutureWarning)
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                traced = torch.jit.freeze(torch.jit.trace(self._model, example, check_trace=False))
            features = traced(x)
            cosine = F.cosine_similarity(traced(probe), self._model(probe), dim=1).min().item()
            if not cosine > _TRACE_MIN_COSINE:
                raise RuntimeError(f"traced features differ from eager ones (cosine {cosine:.5f})")
        except Exception as err:  # tracing is only a speed-up: any failure means eager
            self._fall_back(f"tracing failed: {err}")
            return self._model(x)
        self._traced = traced
        return features

    def _fall_back(self, reason: str) -> None:
        log.warning("%s: TorchScript fast path disabled, running the eager model (%s)", self.spec, reason)
        self._traced = None
        kept = "channels_last" if self._channels_last else "eager"
        self.fast_path = f"{kept} ({reason.splitlines()[0][:200]})"


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"``: CUDA when available, else CPU; a CUDA request without CUDA is an :class:`EncoderError`."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise EncoderError(f"invalid device {device!r}; use 'auto', 'cpu' or 'cuda'") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise EncoderError(f"device {device!r} requested but CUDA is not available; "
                           "use device='cpu' or 'auto'")
    return resolved
