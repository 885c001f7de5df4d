"""Preprocessing for science images before the encoder: background, sigma clipping, a central crop, a stretch.

Astronomers rarely hand raw cutouts to a network (Astronomaly, Lochner & Bassett 2021, subtracts the sky,
clips outliers, crops to the object and stretches first): a sky gradient, a hot pixel or a field full of
neighbours can dominate what an ImageNet CNN sees.  :class:`ScienceSteps` is the one spec of these steps:
frozen and picklable (it travels with the encoder's resize into decoding worker processes and Ray tasks),
validated in one place, with one canonical string (``str(steps)``) that the project records beside the
encoder and weights and that is part of the feature cache key.

The steps act on the decoded values (:func:`~oddscope.core.data.images.load_array`: float for FITS and float
TIFFs, 16-bit, or 8-bit), always in this order, before the resize to the encoder's input:

1. ``background`` (a plane fitted to the image's border) or ``background=median`` (the whole image's
   median): sigma-clipped estimates, so stars and the object do not count; subtracted per channel, on the
   whole image (before the crop, so the sky around the object is measured).
2. ``clip=N``: values clipped to N standard deviations around the sigma-clipped median (per channel): hot
   pixels, cosmic rays and saturated stars stop setting the scale.
3. ``crop=F``: the central F (0 < F < 1) of each side.
4. ``stretch=NAME``: one of the viewer's stretches (:data:`~oddscope.core.data.images.STRETCHES`, the same
   code).  Without one, the usual default: float and 16-bit data get ``to_rgb8``'s default stretch, and 8-bit
   data stays on its 0-255 scale (values rounded and clipped there).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from oddscope.core.data.images import DEFAULT_MAX_PIXELS, STRETCHES, default_stretch, load_array, load_rgb8, to_rgb8

BACKGROUNDS = ("plane", "median")
STEP_NAMES = ("background", "clip", "crop", "stretch")
NONE = "none"
SYNTAX = 'e.g. "background,clip=3,crop=0.5,stretch=asinh" (or "none")'
BORDER = 0.1  # the border a background plane is fitted to: this share of the shorter side
CLIP_SIGMA, CLIP_ITERATIONS = 3.0, 5  # how the background and spread are estimated (sigma clipping)
STATS_SIDE = 256  # pixels per side sampled for the statistics: a large FITS costs no more than a cutout


@dataclass(frozen=True)
class ScienceSteps:
    """The steps before the encoder (all off by default: no preprocessing); see the module's docstring."""

    background: str | None = None
    clip: float | None = None
    crop: float | None = None
    stretch: str | None = None

    def __post_init__(self):
        if self.background is not None and self.background not in BACKGROUNDS:
            raise ValueError(f"background must be one of {', '.join(BACKGROUNDS)}, got {self.background!r}")
        if self.clip is not None and not (np.isfinite(self.clip) and self.clip > 0):
            raise ValueError(f"clip is a number of standard deviations above 0 (e.g. clip=3), got {self.clip}")
        if self.crop is not None and not (0 < self.crop < 1):
            raise ValueError(f"crop is the share of each side kept, between 0 and 1 (e.g. crop=0.5), got "
                             f"{self.crop}; leave crop out to keep the whole image")
        if self.stretch is not None and self.stretch not in STRETCHES:
            raise ValueError(f"stretch must be one of {', '.join(STRETCHES)}, got {self.stretch!r}")

    @classmethod
    def parse(cls, text: str | None) -> ScienceSteps:
        """Steps from their string form (``None``, ``""`` or ``"none"``: no steps); ValueError says what is wrong."""
        text = (text or "").strip()
        if text.lower() == NONE or not text:
            return cls()
        values = {}
        for token in (t.strip() for t in text.split(",")):
            name, has_value, value = (s.strip() for s in token.partition("="))
            if name not in STEP_NAMES:
                raise ValueError(f"unknown preprocessing step {name!r} in {text!r}; the steps are "
                                 f"{', '.join(STEP_NAMES)}, {SYNTAX}")
            if name in values:
                raise ValueError(f"preprocessing step {name!r} given twice in {text!r}")
            if name == "background":
                values[name] = value if has_value else "plane"
            elif not value:
                raise ValueError(f"preprocessing step {name!r} needs a value ({name}=...), {SYNTAX}")
            elif name == "stretch":
                values[name] = value
            else:
                try:
                    values[name] = float(value)
                except ValueError:
                    raise ValueError(f"{name} needs a number, got {value!r}") from None
        return cls(**values)

    def __str__(self) -> str:
        """The canonical form: the steps in their order, ``none`` without any."""
        parts = []
        if self.background:
            parts.append("background" if self.background == "plane" else f"background={self.background}")
        parts += [f"{name}={value:g}" for name, value in (("clip", self.clip), ("crop", self.crop)) if value]
        if self.stretch:
            parts.append(f"stretch={self.stretch}")
        return ",".join(parts) or NONE

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.background, self.clip, self.crop, self.stretch))

    def apply(self, arr: np.ndarray) -> np.ndarray:
        """Raw values -> the (H', W', 3) uint8 image the encoder's resize receives."""
        if not self:
            return to_rgb8(arr)
        stretch = self.stretch or default_stretch(arr)
        values = arr
        if self.background or self.clip:
            values = values.astype(np.float32)
            if self.background:
                values = subtract_background(values, self.background)
            if self.clip:
                values = sigma_clip(values, self.clip)
        if self.crop:
            values = values[crop_box(values.shape, self.crop)]
        if stretch is None and values.dtype != np.uint8:  # 8-bit data stays on its scale
            values = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        return to_rgb8(values, stretch)

    def load_rgb8(self, path, max_pixels: int = DEFAULT_MAX_PIXELS, target_side: int | None = None) -> np.ndarray:
        """The file at ``path`` decoded and put through the steps (no steps: exactly ``images.load_rgb8``)."""
        if not self:
            return load_rgb8(path, max_pixels, target_side)
        if target_side and self.crop:  # a JPEG is decoded at reduced size: keep the crop as sharp
            target_side = int(np.ceil(target_side / self.crop))
        return self.apply(load_array(path, max_pixels, target_side))


NO_STEPS = ScienceSteps()


def crop_box(shape, fraction: float) -> tuple[slice, slice]:
    """The central ``fraction`` of each side of an image of ``shape`` (at least one pixel)."""
    rows, cols = (max(1, round(side * fraction)) for side in shape[:2])
    top, left = (shape[0] - rows) // 2, (shape[1] - cols) // 2
    return slice(top, top + rows), slice(left, left + cols)


def subtract_background(values: np.ndarray, method: str = "plane") -> np.ndarray:
    """``values`` (float) less their background, per channel: a plane fitted to the border, or the median."""
    out = np.empty_like(values)
    for c in range(1 if values.ndim == 2 else values.shape[2]):
        plane = values if values.ndim == 2 else values[..., c]
        target = out if values.ndim == 2 else out[..., c]
        target[...] = plane - (_border_plane(plane) if method == "plane" else clipped_stats(_sample(plane))[0])
    return out


def sigma_clip(values: np.ndarray, n_sigma: float) -> np.ndarray:
    """``values`` clipped, per channel, to ``n_sigma`` standard deviations around their sigma-clipped median."""
    out = values.copy()
    for c in range(1 if values.ndim == 2 else values.shape[2]):
        plane = out if values.ndim == 2 else out[..., c]
        median, std = clipped_stats(_sample(plane))
        if std > 0:  # a flat image has no spread to clip at
            np.clip(plane, median - n_sigma * std, median + n_sigma * std, out=plane)
    return out


def clipped_stats(values: np.ndarray) -> tuple[float, float]:
    """``(median, std)`` of ``values`` after iterative :data:`CLIP_SIGMA` clipping (astropy's recipe, in numpy)."""
    kept = np.asarray(values, np.float64).ravel()
    for _ in range(CLIP_ITERATIONS):
        median, std = np.median(kept), kept.std()
        inside = np.abs(kept - median) <= CLIP_SIGMA * std
        if std == 0 or inside.all():
            break
        kept = kept[inside]
    return float(np.median(kept)), float(kept.std())


def _border_plane(plane: np.ndarray) -> np.ndarray:
    """A plane ``a + b*x + c*y`` fitted to the border pixels with sigma clipping, evaluated on the image."""
    rows, cols = plane.shape
    width = max(1, round(BORDER * min(rows, cols)))
    step = max(1, max(rows, cols) // STATS_SIDE)
    y, x = np.mgrid[0:rows:step, 0:cols:step]
    border = (y < width) | (y >= rows - width) | (x < width) | (x >= cols - width)
    y, x, v = y[border].astype(np.float64), x[border].astype(np.float64), plane[::step, ::step][border]
    design = np.column_stack([np.ones_like(x), x, y])
    keep = np.ones(len(v), bool)
    for _ in range(CLIP_ITERATIONS):
        coef = np.linalg.lstsq(design[keep], v[keep], rcond=None)[0]
        residual = v - design @ coef
        std = residual[keep].std()
        inside = np.abs(residual) <= CLIP_SIGMA * std
        if std == 0 or (inside == keep).all() or inside.sum() < 3:
            break
        keep = inside
    xs, ys = np.arange(cols, dtype=np.float64), np.arange(rows, dtype=np.float64)
    return (coef[0] + coef[1] * xs[None, :] + coef[2] * ys[:, None]).astype(plane.dtype)


def _sample(plane: np.ndarray) -> np.ndarray:
    """At most about :data:`STATS_SIDE` squared pixels of ``plane``, evenly spread (as the stretches sample)."""
    return plane[:: max(1, plane.shape[0] // STATS_SIDE), :: max(1, plane.shape[1] // STATS_SIDE)]
