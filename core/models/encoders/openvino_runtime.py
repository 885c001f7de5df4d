"""OpenVINO: the CPU runtime of the fixed-graph encoders, and the only one a bundle without torch has.

Why: side by side on the 2-core dev machine, OpenVINO ran EfficientNet-Lite0 about
twice as fast as torch's traced fast path, and it needs no torch, so a desktop
bundle without torch (gigabytes lighter) still indexes with the default encoder.

An encoder is exported once per (spec, weights): the eager torch model with the
normalisation in front (uint8 NHWC in, feature vector out) is converted with
``openvino.convert_model``, saved as IR (``model.xml`` + ``model.bin``, weights
kept in f32) with ``meta.json`` saying what it is, and used only after its
features matched the eager model's (cosine > 0.999) on a probe batch.  Exports
live in the user's cache (``$ODDSCOPE_CACHE`` or ``~/.cache/oddscope``, under
``openvino/``); a bundle ships the default encoder's in ``oddscope/resources/openvino``.

Inference runs in f32.  On CPUs with bf16 (the dev machine) OpenVINO's default is
bf16, which ran faster still but gave cosine 0.993 to eager on Lite0: features
that differ that much would not be the features the project recorded.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import json
import logging
import os
import shutil
import warnings
from pathlib import Path

import numpy as np

from oddscope.core.models.encoders.common import ImageEncoderBase
from oddscope.core.models.registry import EncoderError

log = logging.getLogger(__name__)

EXPORT_FORMAT = 1  # bump when the exported graph or meta.json changes meaning
MIN_COSINE = 0.999
# Images per inference request: 2 ran fastest (1: -25%, 4 and 8: -5 to -10%) with the
# THROUGHPUT hint's parallel requests on the dev machine.
_CHUNK = 2
_CONFIG = {"PERFORMANCE_HINT": "THROUGHPUT", "INFERENCE_PRECISION_HINT": "f32"}
# The CPU threads one encoder may use (unset: every core).  A Ray node runs several encoder actors: each is
# given its share here, or each would start a thread per core of the node and all of them would thrash.
THREADS_ENV = "ODDSCOPE_ENCODER_THREADS"


def available() -> bool:
    """Whether the ``openvino`` package is installed (checked without importing it)."""
    return importlib.util.find_spec("openvino") is not None


def cache_dir() -> Path:
    """Where exports made on this machine go."""
    root = os.environ.get("ODDSCOPE_CACHE") or Path.home() / ".cache" / "oddscope"
    return Path(root) / "openvino"


def bundled_dir() -> Path:
    """Where a bundle ships its exports (empty in a pip install)."""
    return Path(str(importlib.resources.files("oddscope.resources"))) / "openvino"


def export_name(spec: str, weights: str) -> str:
    """The folder name of the export of ``spec`` with the weights described by ``weights``."""
    digest = hashlib.sha1(f"{EXPORT_FORMAT}|{spec}|{weights}".encode()).hexdigest()[:12]
    slug = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in spec).strip("-")
    return f"{slug}-{digest}"


def find_export(spec: str, weights: str) -> OpenVinoEncoder | None:
    """The exported encoder for ``spec`` and these weights, from the bundle or the cache; None if none loads."""
    for root in (bundled_dir(), cache_dir()):
        folder = root / export_name(spec, weights)
        if not (folder / "meta.json").is_file():
            continue
        try:
            return OpenVinoEncoder(folder)
        except Exception as err:  # noqa: BLE001 - a broken export is rebuilt, never trusted
            log.warning("ignoring the OpenVINO export in %s: %s", folder, err)
    return None


def export(encoder, root: Path | None = None) -> OpenVinoEncoder:
    """Export a torch :class:`Encoder` (``traceable``) to ``root`` (default: the cache), check it, load it.

    Written to a temporary folder and renamed when checked, so an interrupted
    export never leaves a half model behind.  Raises :class:`EncoderError` when
    conversion fails or the features differ from the eager model's.
    """
    import openvino as ov
    import torch

    root = Path(root) if root is not None else cache_dir()
    folder = root / export_name(encoder.spec, encoder.weights)
    work = folder.with_name(f"{folder.name}.part-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        size = encoder.input_size
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # convert_model traces through torch.jit
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            model = ov.convert_model(_normalised_model(encoder).eval(),
                                     example_input=torch.zeros(2, size, size, 3, dtype=torch.uint8))
        model.reshape({model.inputs[0]: ov.PartialShape([-1, size, size, 3])})
        ov.save_model(model, work / "model.xml", compress_to_fp16=False)
        meta = {key: value for key, value in encoder.describe().items()
                if key not in ("fast_path", "device", "runtime")}
        meta.update(format=EXPORT_FORMAT, exported_from=f"torch {torch.__version__}", openvino=_version(ov))
        (work / "meta.json").write_text(json.dumps(meta, indent=1))
        exported = OpenVinoEncoder(work)
        probe = _probe_images(size)
        cosine = _cosine(exported.encode(probe), encoder.eager_encode(probe)).min()
        if not cosine > MIN_COSINE:
            raise EncoderError(f"{encoder.spec}: OpenVINO features differ from the eager model's "
                               f"(cosine {cosine:.5f} <= {MIN_COSINE})")
        meta["cosine_to_eager"] = round(float(cosine), 6)
        (work / "meta.json").write_text(json.dumps(meta, indent=1))
        shutil.rmtree(folder, ignore_errors=True)
        work.rename(folder)
    except EncoderError:
        raise
    except Exception as err:
        raise EncoderError(f"{encoder.spec}: could not export to OpenVINO ({type(err).__name__}: {err})") from err
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return OpenVinoEncoder(folder)


class OpenVinoEncoder(ImageEncoderBase):
    """Images in, feature vectors out, through an exported model on the CPU; no torch.

    The same interface as the torch :class:`Encoder` for indexing (``encode``,
    ``describe``, ``preprocessor``); it has no intermediate stages (per-pixel
    maps use the torch encoder) and no text tower.
    """

    traceable = True
    supports_text = False
    stages: tuple = ()

    def __init__(self, folder: Path):
        import openvino as ov

        self.folder = Path(folder)
        meta = json.loads((self.folder / "meta.json").read_text())
        if meta.get("format") != EXPORT_FORMAT:
            raise ValueError(f"export format {meta.get('format')}, this Oddscope reads {EXPORT_FORMAT}")
        self.meta = meta
        self.spec, self.name, self.weights = meta["spec"], meta["name"], meta["weights"]
        self.dim, self.input_size = int(meta["dim"]), int(meta["input_size"])
        self.mean, self.std = tuple(meta["mean"]), tuple(meta["std"])
        self.interpolation = meta["interpolation"]
        self.device = "cpu"
        threads = os.environ.get(THREADS_ENV)
        config = {**_CONFIG, "INFERENCE_NUM_THREADS": int(threads)} if threads else _CONFIG
        self._compiled = ov.Core().compile_model(self.folder / "model.xml", "CPU", config)
        requests = self._compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")
        self._queue = ov.AsyncInferQueue(self._compiled, requests)
        self._queue.set_callback(self._collect)
        self._out: np.ndarray | None = None
        limit = f", {threads} threads" if threads else ""
        self.fast_path = f"openvino {_version(ov)} (f32, {requests} parallel requests{limit})"

    def encode(self, batch: np.ndarray) -> np.ndarray:
        """``(B, S, S, 3)`` uint8 batch from :meth:`preprocess` -> ``(B, dim)`` float32."""
        batch = np.ascontiguousarray(batch)
        self.check_batch(batch.shape, batch.dtype)
        self._out = np.empty((len(batch), self.dim), np.float32)
        for start in range(0, len(batch), _CHUNK):
            self._queue.start_async({0: batch[start:start + _CHUNK]}, start)
        self._queue.wait_all()
        return self._out

    def _collect(self, request, start: int) -> None:
        features = request.get_output_tensor(0).data
        self._out[start:start + len(features)] = features

    def encode_text(self, texts):
        raise NotImplementedError(f"encoder {self.spec!r} has no text tower; text queries need a CLIP encoder")

    def describe(self) -> dict:
        """What produced the features, as the torch encoder's record, plus the runtime and the export's check."""
        record = {key: value for key, value in self.meta.items() if key not in ("format", "cosine_to_eager")}
        record.update(fast_path=self.fast_path, device="cpu", runtime=f"openvino {self.meta['openvino']}",
                      export=f"{self.folder} (cosine to eager {self.meta.get('cosine_to_eager')})")
        return record

    def __repr__(self) -> str:
        return f"OpenVinoEncoder({self.spec!r}, dim={self.dim}, folder={str(self.folder)!r})"


def _normalised_model(encoder):
    """The encoder's eager model with its normalisation in front: uint8 NHWC in, as ``encode`` takes it."""
    import torch

    class Normalised(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = encoder.model
            self.register_buffer("shift", torch.tensor(encoder.mean).view(1, 3, 1, 1) * 255.0)
            self.register_buffer("scale", 1.0 / (torch.tensor(encoder.std).view(1, 3, 1, 1) * 255.0))

        def forward(self, x):
            return self.model((x.permute(0, 3, 1, 2).float() - self.shift) * self.scale)

    return Normalised()


def _probe_images(size: int, n: int = 6) -> np.ndarray:
    """Smooth random colour fields (more like photographs than pixel noise) to compare two runtimes on."""
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (n, 8, 8, 3)).astype(np.float32)
    ramp = np.linspace(0, 7, size)
    i0 = np.floor(ramp).astype(int)
    i1, w = np.minimum(i0 + 1, 7), (ramp - i0)[:, None]
    rows = coarse[:, i0] * (1 - w)[None, :, :, None] + coarse[:, i1] * w[None, :, :, None]
    images = rows[:, :, i0] * (1 - w.T)[None, :, :, None] + rows[:, :, i1] * w.T[None, :, :, None]
    return np.clip(images + rng.normal(0, 8, images.shape), 0, 255).astype(np.uint8)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)


def _version(ov) -> str:
    return ov.__version__.split("-")[0]  # "2026.4.1-22982-e213a14-releases/..." -> "2026.4.1"
