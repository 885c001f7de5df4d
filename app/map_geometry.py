"""The map's geometry and density arithmetic, Qt-free: box and lasso hit tests, density bins and their alpha."""

from __future__ import annotations

import numpy as np

MIN_ALPHA = 160  # alpha of a bin holding one point; the densest bin is opaque


def in_box(x: np.ndarray, y: np.ndarray, x0, x1, y0, y1) -> np.ndarray:
    """Boolean mask of the points ``(x, y)`` inside the data box ``[x0, x1] x [y0, y1]`` (edges included)."""
    return (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)


def bin_index(x: np.ndarray, y: np.ndarray, view, shape, in_view, n_visible):
    """Flat bin index (row-major, row 0 at the bottom) of each point in ``view`` binned to ``shape``
    ((w, h) bins), and which points those are (None: all).  Points are subset only when some lie
    outside (``in_view`` holds which are in, ``n_visible`` how many): the copy costs more than it
    saves when the whole map is visible."""
    subset = None if n_visible == x.size else np.flatnonzero(in_view)
    if subset is not None:
        x, y = x[subset], y[subset]
    x0, x1, y0, y1 = view
    w, h = shape
    ix = ((x - np.float32(x0)) * np.float32(w / (x1 - x0))).astype(np.int32)
    iy = ((y - np.float32(y0)) * np.float32(h / (y1 - y0))).astype(np.int32)
    np.minimum(ix, w - 1, out=ix)
    np.minimum(iy, h - 1, out=iy)
    iy *= w
    iy += ix
    return iy, subset


def points_in_polygon(x: np.ndarray, y: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Boolean mask of the points ``(x, y)`` inside ``polygon`` ((M, 2) vertices), even-odd rule.

    Ray casting, but each edge only tests the points whose y lies in the edge's y span: the points are
    sorted by y once and each edge takes a slice with ``searchsorted``.  That costs about
    O(n log n + n * crossings) instead of O(n * edges), so a hand-drawn lasso of hundreds of vertices
    over 100k candidates stays in the tens of milliseconds.
    """
    x, y = np.asarray(x), np.asarray(y)  # float32 points stay float32: sorting them is 2x faster
    poly = np.asarray(polygon, np.float64).reshape(-1, 2)
    inside = np.zeros(x.shape, bool)
    if len(poly) < 3 or x.size == 0:
        return inside
    order = np.argsort(y)
    ys, xs = y[order], x[order]
    flip = np.zeros(x.shape, bool)
    x1s, y1s = poly[:, 0], poly[:, 1]
    x2s, y2s = np.roll(x1s, -1), np.roll(y1s, -1)
    lo = np.searchsorted(ys, np.minimum(y1s, y2s), "left")
    hi = np.searchsorted(ys, np.maximum(y1s, y2s), "left")
    for x1, y1, x2, y2, a, b in zip(x1s, y1s, x2s, y2s, lo, hi):
        if a == b:
            continue  # horizontal edge or no point in its y span
        crossing_x = x1 + (ys[a:b] - y1) * ((x2 - x1) / (y2 - y1))
        flip[a:b] ^= xs[a:b] < crossing_x
    inside[order] = flip
    return inside


def density_alpha(counts: np.ndarray) -> np.ndarray:
    """MIN_ALPHA for a single point up to opaque for the densest bin, on a log scale."""
    top = max(float(np.log1p(counts.max())), 1e-9)
    alpha = np.log1p(counts, dtype=np.float32)
    alpha *= (255 - MIN_ALPHA) / top
    alpha += MIN_ALPHA
    alpha[counts == 0] = 0
    return alpha.astype(np.uint8)
