"""A folder of hostile inputs, written cheaply, with the outcome each file must get.

Not a test module: ``tests/test_hostile_inputs.py`` and the benchmarks import
:func:`make_hostile_folder`.  Every case is small on disk and cheap to decode
except where the point is size, and there the size is only *claimed* (PNG and
TIFF headers saying 20000 x 20000) so that a reader that trusts it would
allocate hundreds of megabytes, and one that checks first skips it at once.

Outcomes: ``"ok"`` (indexed) or a substring of the one-line skip reason.
Keys are file names as the reports print them (``display_name``).

:class:`FakeEncoder` lives here too: the tests and ``benchmarks/bench_memory.py``
index with it where the real network would only cost time.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from oddscope.core.data.science import NO_STEPS, ScienceSteps
from oddscope.core.models.encoders.common import Preprocess

UNREADABLE = "unreadable.png"  # the test makes it unreadable (chmod 0, or os.access patched when root)
NON_UTF8_NAME = b"caf\xe9-latin1.png"  # a Latin-1 name, not valid UTF-8
LONG_NAME = "l" * 251 + ".png"  # 255 bytes, the usual file-system limit
LONG_UTF8_NAME = "\u00e9" * 125 + ".png"  # 254 bytes in UTF-8, 129 characters


def display_name(name: str | bytes) -> str:
    """How reports print a file name: undecodable bytes as ``\\xNN``."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _rgb(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _png_bytes(array: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _write(path: str | bytes, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` 8-bit grey, with one tiny (wrong) data chunk."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def make_hostile_folder(root) -> dict[str, str]:
    """Write every hostile case under ``root``; returns ``{display name: "ok" or reason substring}``."""
    import tifffile
    from astropy.io import fits

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    expected: dict[str, str] = {}

    def put(name: str, outcome: str, data: bytes | None = None) -> Path:
        path = root / name
        if data is not None:
            path.write_bytes(data)
        expected[display_name(name)] = outcome
        return path

    # --- ordinary images (so that the good ones are not all exotic)
    for i in range(4):
        Image.fromarray(_rgb(24, 32, i)).save(put(f"good_{i}.png", "ok"))
    Image.fromarray(_rgb(40, 30, 9)).save(put("good.jpg", "ok"), quality=90)

    # --- empty, truncated, lying extensions
    put("empty.png", "empty file (0 bytes)", b"")
    put("empty.fits", "empty file (0 bytes)", b"")
    jpeg = root / "_full.jpg"
    Image.fromarray(_rgb(64, 64, 1)).save(jpeg, quality=90)
    put("truncated.jpg", "truncated", jpeg.read_bytes()[: jpeg.stat().st_size // 2])
    jpeg.unlink()
    put("truncated.png", "truncated", _png_bytes(_rgb(64, 64, 2))[:200])
    put("png_named.jpg", "ok", _png_bytes(_rgb(16, 16, 3)))
    put("text_named.png", "not an image", b"just some text, not pixels\n" * 10)
    put("text_named.fits", "not a readable FITS file", b"SIMPLE = nonsense\n" * 10)

    # --- colour models and bit depths
    Image.fromarray(_rgb(20, 20, 4)).convert("CMYK").save(put("cmyk.jpg", "ok"))
    Image.fromarray(_rgb(20, 20, 5)).convert("P").save(put("palette.png", "ok"))
    Image.fromarray(_rgb(20, 20, 5)).convert("RGBA").save(put("rgba.png", "ok"))
    Image.fromarray((np.arange(400).reshape(20, 20) * 150).astype(np.uint16)).save(put("grey16.png", "ok"))
    floats = np.linspace(-3, 3, 400, dtype=np.float32).reshape(20, 20)
    floats[3, 3] = np.nan
    tifffile.imwrite(put("float32.tif", "ok"), floats)

    # --- sizes
    Image.fromarray(_rgb(1, 1, 6)).save(put("one_pixel.png", "ok"))
    Image.fromarray(_rgb(1, 1, 6)).save(put("one_pixel.jpg", "ok"))
    put("huge_header.png", "too large", _png_header_only(20000, 20000))  # Pillow's bomb guard
    put("over_max_pixels.png", "too large", _png_header_only(10000, 10001))  # our max_pixels (100 Mpx)
    huge_tiff = put("huge_header.tif", "too large")
    tifffile.imwrite(huge_tiff, shape=(20000, 20000), dtype=np.uint8)  # a sparse file...
    os.truncate(huge_tiff, 4096)  # ...cut to its header: no data at all
    Image.new("L", (4000, 3000), 128).save(put("large.jpg", "ok"), quality=50)  # decoded in draft mode

    # --- frames, orientation
    frames = [Image.fromarray(_rgb(16, 16, s)).convert("P") for s in range(3)]
    frames[0].save(put("animated.gif", "ok"), save_all=True, append_images=frames[1:], duration=50, loop=0)
    rotated = Image.fromarray(_rgb(10, 20, 7))
    exif = rotated.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    rotated.save(put("exif_rotated.jpg", "ok"), exif=exif)

    # --- FITS
    sky = np.random.default_rng(8).normal(100, 5, (16, 16)).astype(np.float32)
    sky[2, 2], sky[5, 5], sky[7, 7] = np.nan, np.inf, -np.inf
    fits.writeto(put("nan_inf.fits", "ok"), sky)
    fits.writeto(put("all_nan.fits", "no finite pixels"), np.full((8, 8), np.nan, np.float32))
    fits.writeto(put("cube.fits", "ok"), np.ones((3, 16, 16), np.float32))
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(
        [fits.Column(name="flux", format="E", array=np.ones(3, np.float32))])]).writeto(
        put("table_only.fits", "no image HDU"))

    # --- file-system oddities
    Image.fromarray(_rgb(12, 12, 10)).save(put(UNREADABLE, "permission denied"))
    os.chmod(root / UNREADABLE, 0)
    put(LONG_NAME, "ok", _png_bytes(_rgb(12, 12, 12)))
    put(LONG_UTF8_NAME, "ok", _png_bytes(_rgb(12, 12, 13)))

    def attempt(name: str | bytes, outcome: str, make) -> None:
        """A case the platform may refuse (symlinks; undecodable or multi-line names): Linux allows all."""
        try:
            make(os.path.join(os.fsencode(root), os.fsencode(name)))
        except OSError:
            return
        expected[display_name(name)] = outcome

    attempt("broken_link.png", "broken symbolic link", lambda path: os.symlink(root / "gone_forever.png", path))
    attempt("link_to_good.png", "ok", lambda path: os.symlink(root / "good_0.png", path))
    attempt(NON_UTF8_NAME, "not valid UTF-8", lambda path: _write(path, _png_bytes(_rgb(12, 12, 11))))
    attempt("new\nline and spaces.png", "ok", lambda path: _write(path, _png_bytes(_rgb(12, 12, 14))))
    (root / "notes.txt").write_text("not an image: ignored, not reported")
    (root / "sub" / "deeper").mkdir(parents=True)
    Image.fromarray(_rgb(12, 12, 15)).save(root / "sub" / "deeper" / "nested.PNG")
    expected["nested.PNG"] = "ok"
    return expected


class FakeEncoder:
    """A stand-in for :func:`oddscope.core.models.encoders.load_encoder`'s result: fast and deterministic.

    Features are a fixed random projection of the resized pixels, so equal
    images give equal features and different images different ones.  The
    projection has integer weights and runs in float64, so it is exact: a row's
    features do not depend on which batch it came in (BLAS float32 sums do).  It counts
    what it encodes (``encoded``) and can sleep per batch (``delay``) to make
    a run slow enough to be killed half-way.
    """

    def __init__(self, dim: int = 16, input_size: int = 8, delay: float = 0.0, spec: str = "fake"):
        self.dim, self.input_size, self.delay, self.spec = dim, input_size, delay, spec
        self._projection = np.random.default_rng(0).integers(
            -3, 4, size=(input_size * input_size * 3, dim)).astype(np.float64)
        self.encoded = 0

    def preprocessor(self, steps: ScienceSteps = NO_STEPS) -> Preprocess:
        return Preprocess(self.input_size, "bilinear", steps)

    def encode(self, batch) -> np.ndarray:
        import time

        batch = np.asarray(batch)
        assert batch.dtype == np.uint8 and batch.shape[1:] == (self.input_size, self.input_size, 3)
        time.sleep(self.delay)
        self.encoded += len(batch)
        return (batch.reshape(len(batch), -1).astype(np.float64) @ self._projection).astype(np.float32) / 1000

    @property
    def stages(self) -> list[dict]:
        """Two "stages" (strides 2 and 4) for per-pixel maps: block means of the pixels."""
        return [{"reduction": 2, "num_chs": 3, "module": "fake.2"}, {"reduction": 4, "num_chs": 3, "module": "fake.4"}]

    def stage_features(self, batch, indices):
        import torch

        x = torch.as_tensor(np.asarray(batch)).permute(0, 3, 1, 2).float() / 255
        return [torch.nn.functional.avg_pool2d(x, self.stages[i]["reduction"]) for i in indices]

    def describe(self) -> dict:
        return {"spec": self.spec, "weights": "none (test double)", "dim": self.dim,
                "input_size": self.input_size}
