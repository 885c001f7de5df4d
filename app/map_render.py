"""What the map's layers draw, worked out without Qt: point colourings and a plan of the points layer for a view.

At a million points and more each of these is a pass (or several) over every
point - 0.1-0.4 s at 5M - so :class:`~oddscope.app.map_layers.MapLayers` runs
them in a worker thread from :data:`ASYNC_POINTS` on and only hands the result
to its items on the GUI thread.  Below that they run at once (a few ms).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from oddscope.app.map_geometry import bin_index, density_alpha, in_box

ASYNC_POINTS = 500_000  # maps of this many points are coloured and drawn in a worker thread
NAN_COLOR = (128, 128, 128, 255)
PLAIN_COLOR = (110, 170, 255, 255)  # points coloured by nothing


@dataclass(frozen=True)
class MapPoints:
    """A map's coordinates, checked and split into contiguous x and y, with their bounds: made once per map
    (with the table, off the GUI thread at scale), since at 5M points that is 50 ms of passes."""

    x: np.ndarray  # float32
    y: np.ndarray
    bounds: tuple  # x0, x1, y0, y1 (zeros when there are no points)


def map_points(xy) -> MapPoints:
    """:class:`MapPoints` of ``xy`` ((N, 2)); raises ValueError for another shape or a NaN or infinite point."""
    xy = np.asarray(xy, np.float32)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"xy must have shape (N, 2), got {xy.shape}")
    if not np.isfinite(xy).all():
        raise ValueError("xy contains NaN or infinite coordinates")
    x, y = np.ascontiguousarray(xy[:, 0]), np.ascontiguousarray(xy[:, 1])
    bounds = (float(x.min()), float(x.max()), float(y.min()), float(y.max())) if len(xy) else (0.0, 0.0, 0.0, 0.0)
    return MapPoints(x, y, bounds)


@dataclass(frozen=True)
class Colouring:
    """How each point is coloured: its palette row (``keys``, for markers) and what density bins average."""

    keys: np.ndarray  # per point, its row in ``palette`` (uint16)
    palette: np.ndarray  # (rows, 4) uint8 RGBA
    values01: np.ndarray | None = None  # continuous colours: values scaled to [0, 1], NaN -> 0 (float64)
    nan: np.ndarray | None = None  # bool mask of the NaN values, None when there are none
    point_rgb: np.ndarray | None = None  # categorical colours: (3, N) float64 rows, as bincount weighs them

    @property
    def palette32(self) -> np.ndarray:
        """Palette rows as uint32 RGBA: one gather colours every bin."""
        return np.ascontiguousarray(self.palette, np.uint8).reshape(-1, 4).view(np.uint32).ravel()


def plain_colouring(n: int) -> Colouring:
    """One colour for every point."""
    return Colouring(np.zeros(n, np.uint16), np.array([PLAIN_COLOR], np.uint8))


def value_colouring(values: np.ndarray, vmin, vmax, lut: np.ndarray, progress=None):
    """Colour by ``values`` (NaN and inf grey) through the 256-entry RGBA ``lut`` from ``vmin`` to ``vmax``
    (None: the finite range); returns ``(colouring, lo, hi)``, the range used.  ``progress``: a task's, unused."""
    values = np.asarray(values, np.float64)
    nan = ~np.isfinite(values)  # NaN (and inf): no value, drawn grey
    finite = values[~nan]
    if vmin is None:
        vmin = float(finite.min()) if finite.size else 0.0
    if vmax is None:
        vmax = float(finite.max()) if finite.size else 1.0
    lo = float(vmin)
    hi = float(vmax) if vmax > vmin else lo + 1.0
    scaled = np.clip((values - lo) / (hi - lo), 0.0, 1.0)  # float64: what bincount weighs in
    scaled[nan] = 0.0
    keys = (scaled * 255 + 0.5).astype(np.uint16)
    keys[nan] = 256
    palette = np.vstack([lut, NAN_COLOR]).astype(np.uint8)
    return Colouring(keys, palette, values01=scaled, nan=nan if nan.any() else None), lo, hi


def category_colouring(codes: np.ndarray, colours: list, progress=None) -> Colouring:
    """Colour by category ``codes`` in [-1, n) with the n RGBA ``colours`` (-1 = none, grey: the palette's last
    row).  ``progress``: unused."""
    n = len(colours)
    palette = np.array(list(colours) + [NAN_COLOR], np.uint8).reshape(-1, 4)
    keys = np.where(codes < 0, n, codes).astype(np.uint16)
    return Colouring(keys, palette, point_rgb=np.ascontiguousarray(palette[keys, :3].T, np.float64))


@dataclass(frozen=True)
class Points:
    """The map's points and their colouring, as one layer render reads them (replaced, never changed in place)."""

    x: np.ndarray  # float32
    y: np.ndarray
    bounds: tuple  # x0, x1, y0, y1
    colouring: Colouring


@dataclass(frozen=True)
class Density:
    rgba: np.ndarray  # (w, h, 4) uint8, x first as pyqtgraph's ImageItem takes it
    view: tuple


@dataclass(frozen=True)
class Scatter:
    index: np.ndarray | None  # the points to load as markers; None: the loaded ones still cover the view
    region: tuple | None  # what they cover


def plan_points(points: Points, view, shape, threshold: int, loaded: tuple | None, progress=None):
    """What the points layer shows for ``view`` binned to ``shape``: a :class:`Density` image when more than
    ``threshold`` points are in view, else :class:`Scatter` markers for the view plus half a view on each side
    (``loaded``: the region whose markers are loaded now).  ``progress``: a task's, unused."""
    x, y = points.x, points.y
    x0, x1, y0, y1 = view
    bx0, bx1, by0, by1 = points.bounds
    if x0 <= bx0 and bx1 <= x1 and y0 <= by0 and by1 <= y1:  # all in view: skip the mask
        in_view, n_visible = None, x.size
    else:
        in_view = in_box(x, y, *view)
        n_visible = int(np.count_nonzero(in_view))
    if n_visible > threshold:
        return Density(density_rgba(points, view, shape, in_view, n_visible), view)
    if loaded is not None and loaded[0] <= x0 and x1 <= loaded[1] and loaded[2] <= y0 and y1 <= loaded[3]:
        return Scatter(None, loaded)
    half_w, half_h = (x1 - x0) / 2, (y1 - y0) / 2
    region = (x0 - half_w, x1 + half_w, y0 - half_h, y1 + half_h)
    mask = in_box(x, y, *region)
    if np.count_nonzero(mask) > 3 * threshold:
        region, mask = view, in_box(x, y, *view)
    return Scatter(np.flatnonzero(mask), region)


def density_rgba(points: Points, view, shape, in_view, n_visible) -> np.ndarray:
    """The points in view binned into a (w, h, 4) RGBA image.  Pixels are handled as uint32 (one gather from
    the palette) because row-wise uint8 assignments cost ~4x more at a million bins."""
    w, h = shape
    colouring = points.colouring
    flat, subset = bin_index(points.x, points.y, view, shape, in_view, n_visible)
    n_bins = w * h
    counts = np.bincount(flat, minlength=n_bins)
    if colouring.values01 is not None:
        values = colouring.values01 if subset is None else colouring.values01[subset]
        if colouring.nan is None:
            sums = np.bincount(flat, weights=values, minlength=n_bins)
            n_finite = counts
        else:
            finite = ~(colouring.nan if subset is None else colouring.nan[subset])
            sums = np.bincount(flat[finite], weights=values[finite], minlength=n_bins)
            n_finite = np.bincount(flat[finite], minlength=n_bins)
        key = (sums / np.maximum(n_finite, 1) * 255 + 0.5).astype(np.uint16)
        key[n_finite == 0] = 256  # the palette's NaN colour
        pixels = colouring.palette32[key]
    elif colouring.point_rgb is not None:
        colors = colouring.point_rgb if subset is None else colouring.point_rgb[:, subset]
        scale = 1.0 / np.maximum(counts, 1)
        rgb = np.empty((n_bins, 4), np.uint8)
        for c in range(3):
            rgb[:, c] = np.bincount(flat, weights=colors[c], minlength=n_bins) * scale
        pixels = rgb.view(np.uint32).ravel()
    else:
        pixels = np.full(n_bins, colouring.palette32[0], np.uint32)
    rgba = pixels.view(np.uint8).reshape(h, w, 4)
    rgba[..., 3] = density_alpha(counts).reshape(h, w)
    return rgba.transpose(1, 0, 2)
