"""Reading every image format a user points us at, and turning it into pixels.

Two consumers need pixels: the encoder wants an 8-bit RGB image, the viewer
wants the raw values (16-bit, float, FITS) so the user can choose a stretch.
``load_array`` gives the raw values; ``to_rgb8`` stretches them to 8-bit RGB;
``load_rgb8`` does both for the encoder.  Anything that cannot be read raises
:class:`ImageReadError` with a one-line reason that goes into the skipped-file
report: a bad file never stops a run.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from oddscope.core.data.remote import RemoteUnavailable, is_url, read_url

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif")
FITS_EXTENSIONS = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz")
STRETCHES = ("linear", "log", "asinh", "zscale")
# Pixels we are willing to decode.  Larger images are skipped with a reason
# that says how to raise the limit; JPEGs are decoded at reduced size instead.
DEFAULT_MAX_PIXELS = 100_000_000


class ImageReadError(Exception):
    """A file that cannot be used; ``str(err)`` is the reason shown to the user."""


def is_image_path(path: str | os.PathLike) -> bool:
    name = str(path).lower()
    return name.endswith(IMAGE_EXTENSIONS) or name.endswith(FITS_EXTENSIONS)


def is_fits_path(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(FITS_EXTENSIONS)


def load_array(path, max_pixels: int = DEFAULT_MAX_PIXELS, target_side: int | None = None) -> np.ndarray:
    """Raw pixel values: (H, W) or (H, W, 3), uint8/uint16/float32, NaN-free.

    ``target_side`` lets JPEG decoding skip detail the caller will throw away
    (the encoder only needs ~224 px), which makes large photos cheap.
    """
    source, size = _source(path)
    if size == 0:
        raise ImageReadError("empty file (0 bytes)")
    if is_fits_path(path):
        return _load_fits(source, max_pixels)
    if Path(path).suffix.lower() in (".tif", ".tiff"):
        try:
            return _load_tiff(source, max_pixels)
        except ImageReadError:
            raise
        except Exception:  # noqa: BLE001 - not a TIFF tifffile understands: let Pillow try
            if isinstance(source, io.BytesIO):
                source.seek(0)
    return _load_pillow(source, max_pixels, target_side)


def _source(path) -> tuple:
    """``(what the decoders open, its size in bytes)``: the local file's path, or an fsspec URL's bytes read
    into memory (:mod:`oddscope.core.data.remote`)."""
    if is_url(path):
        try:
            data = read_url(path)
        except RemoteUnavailable as err:
            raise ImageReadError(str(err)) from None
        except Exception as err:  # noqa: BLE001 - a missing object, a refused request: the reason is kept
            raise ImageReadError(f"cannot read URL: {_reason(err)}") from None
        return io.BytesIO(data), len(data)
    path = Path(path)
    try:
        return path, path.stat().st_size
    except OSError as err:
        raise ImageReadError(f"cannot access file: {err.strerror or err}") from None


def _load_pillow(path: Path, max_pixels: int, target_side: int | None) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            # Pillow warns above ~89 Mpx; our own ``max_pixels`` decides instead (JPEGs above it are
            # drafted smaller).  Its hard error at twice that stays as the last line of defence.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size
                if w * h > max_pixels and img.format != "JPEG":
                    raise ImageReadError(_too_large(w, h, max_pixels))
                if img.format == "JPEG" and target_side:
                    img.draft("RGB", (target_side, target_side))
                elif img.format == "JPEG" and w * h > max_pixels:
                    img.draft("RGB", _fit_within(w, h, max_pixels))
                img.seek(0)  # animated GIF/WebP: the first frame
                img = ImageOps.exif_transpose(img)
                return _pillow_to_array(img)
    except ImageReadError:
        raise
    except Image.DecompressionBombError as err:
        raise ImageReadError(f"image too large (decompression-bomb guard: {err})") from None
    except Exception as err:  # noqa: BLE001 - any decoder failure becomes a reason
        raise ImageReadError(_reason(err)) from None


def _pillow_to_array(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(img, dtype=np.uint16)
    if mode in ("I", "F"):
        return _finite(np.asarray(img, dtype=np.float32))
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        # Transparent regions become black, the sky/background colour of most data.
        rgba = img.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return np.asarray(Image.alpha_composite(black, rgba).convert("RGB"))
    if mode == "L":
        return np.asarray(img)
    return np.asarray(img.convert("RGB"))  # 1, P, CMYK, YCbCr, LAB, HSV, RGB


def _load_tiff(path: Path, max_pixels: int) -> np.ndarray:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        shape = page.shape
        if int(np.prod(shape[:2])) > max_pixels:
            raise ImageReadError(_too_large(shape[1], shape[0], max_pixels))
        arr = page.asarray()
        photometric = getattr(page.photometric, "name", "")
    arr = np.squeeze(arr)
    if arr.ndim == 3 and arr.shape[0] <= 4 < arr.shape[-1]:
        arr = np.moveaxis(arr, 0, -1)  # planar (C, H, W) -> (H, W, C)
    if arr.ndim == 3 and photometric == "SEPARATED" and arr.shape[-1] >= 4:
        raise ValueError("CMYK TIFF: let Pillow convert it")
    if arr.ndim == 3 and arr.shape[-1] in (2, 4):
        arr = arr[..., :-1] if arr.shape[-1] == 4 else arr[..., 0]  # drop alpha
    if arr.ndim == 3 and arr.shape[-1] > 4:
        arr = arr[0]  # a stack of pages/planes: the first plane
    if arr.ndim != 2 and not (arr.ndim == 3 and arr.shape[-1] == 3):
        raise ImageReadError(f"unsupported TIFF layout {arr.shape}")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    if arr.dtype.kind == "f" or arr.dtype.itemsize > 2 or arr.dtype.kind == "i":
        arr = _finite(arr.astype(np.float32))
    return arr


def _load_fits(path: Path, max_pixels: int) -> np.ndarray:
    """The first image HDU; of a cube, its first plane.

    Sizes come from the header and only the first plane is read (``section``),
    so a huge cube or a header that lies costs nothing before it is refused.
    """
    from astropy.io import fits

    try:
        with fits.open(path, memmap=False) as hdul:
            hdu = next((h for h in hdul if h.is_image and len(h.shape) >= 2), None)
            if hdu is None:
                raise ImageReadError("FITS file has no image HDU")
            height, width = hdu.shape[-2:]
            if height * width > max_pixels:
                raise ImageReadError(_too_large(width, height, max_pixels))
            data = hdu.section[(0,) * (len(hdu.shape) - 2) + (slice(None), slice(None))]
    except ImageReadError:
        raise
    except Exception as err:  # noqa: BLE001
        raise ImageReadError(f"not a readable FITS file: {_reason(err)}") from None
    return _finite(np.asarray(data, dtype=np.float32))


def _finite(arr: np.ndarray) -> np.ndarray:
    """Replace NaN/inf by the median of the finite pixels; all-NaN is an error."""
    bad = ~np.isfinite(arr)
    if bad.all():
        raise ImageReadError("image has no finite pixels (all NaN/inf)")
    if bad.any():
        arr = arr.copy()
        arr[bad] = np.median(arr[~bad])
    return arr


def to_rgb8(arr: np.ndarray, stretch: str | None = None, contrast: float = 1.0,
            low_pct: float = 0.5, high_pct: float = 99.5) -> np.ndarray:
    """Stretch raw values to an 8-bit RGB image.

    Without a ``stretch``, :func:`default_stretch` chooses (8-bit input is
    shown as it is).  ``contrast`` > 1 steepens the curve, as in the viewer's
    slider.
    """
    stretch = stretch or default_stretch(arr)
    if stretch is None:
        out = arr
    else:
        out = (stretch_values(arr.astype(np.float32), stretch, contrast, low_pct, high_pct) * 255 + 0.5).astype(np.uint8)
    if out.ndim == 2:
        out = np.repeat(out[..., None], 3, axis=2)
    return np.ascontiguousarray(out)


def default_stretch(arr: np.ndarray) -> str | None:
    """The stretch ``to_rgb8`` uses unless told: none for 8-bit (shown as stored), ``asinh`` for float data
    (faint structure next to bright cores), ``linear`` between percentiles otherwise (16-bit)."""
    if arr.dtype == np.uint8:
        return None
    return "asinh" if arr.dtype.kind == "f" else "linear"


def stretch_values(arr: np.ndarray, stretch: str, contrast: float = 1.0,
                   low_pct: float = 0.5, high_pct: float = 99.5) -> np.ndarray:
    """Map values to [0, 1] with one of :data:`STRETCHES`."""
    if stretch not in STRETCHES:
        raise ValueError(f"unknown stretch {stretch!r}; choose one of {', '.join(STRETCHES)}")
    sample = arr[:: max(1, arr.shape[0] // 256), :: max(1, arr.shape[1] // 256)]
    lo, hi = (zscale_limits(sample) if stretch == "zscale"
              else np.percentile(sample, [low_pct, high_pct]))
    if hi <= lo:
        hi = lo + 1.0
    x = np.clip((arr - lo) / (hi - lo), 0.0, 1.0)
    if stretch == "log":
        a = 1000.0 * contrast
        x = np.log1p(a * x) / np.log1p(a)
    elif stretch == "asinh":
        a = 10.0 * contrast
        x = np.arcsinh(a * x) / np.arcsinh(a)
    elif contrast != 1.0:
        x = np.clip((x - 0.5) * contrast + 0.5, 0.0, 1.0)
    return x


def zscale_limits(arr: np.ndarray) -> tuple[float, float]:
    """IRAF zscale display limits (astropy's implementation)."""
    from astropy.visualization import ZScaleInterval

    lo, hi = ZScaleInterval().get_limits(arr[np.isfinite(arr)])
    return float(lo), float(hi)


def load_rgb8(path, max_pixels: int = DEFAULT_MAX_PIXELS, target_side: int | None = None) -> np.ndarray:
    """What the encoder sees: an (H, W, 3) uint8 image, default stretch."""
    return to_rgb8(load_array(path, max_pixels=max_pixels, target_side=target_side))


def _fit_within(w: int, h: int, max_pixels: int) -> tuple[int, int]:
    scale = (max_pixels / float(w * h)) ** 0.5
    return max(1, int(w * scale)), max(1, int(h * scale))


def _too_large(w: int, h: int, max_pixels: int) -> str:
    return (f"image too large ({w}x{h} = {w * h / 1e6:.0f} Mpx > limit {max_pixels / 1e6:.0f} Mpx; "
            "raise it with --max-pixels)")


def _reason(err: Exception) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    name = type(err).__name__
    if "truncated" in text.lower() or isinstance(err, (EOFError,)):
        return f"truncated or corrupt image ({text or name})"
    if "cannot identify image file" in text:
        return "not an image Oddscope can read (unknown or corrupt format)"
    return f"{name}: {text}" if text else name
