"""The map's point layers, drawn by level of detail for the visible range, and the colours they draw with.

Why not one ``pg.ScatterPlotItem``: at 1M points its ``setData`` takes ~2.3 s and a repaint ~255 ms
on this machine, and even at 20k points ``setData`` costs 70-250 ms of per-point Python work.  So
:class:`MapLayers` re-renders for the visible range:

* many points in view: one ``pg.ImageItem`` binned to ``BIN_PX`` screen pixels with ``np.bincount``
  (colour = mean value per bin through the colour map, or mean category colour; alpha = log count).
  Binning 1M points takes ~30-60 ms, inside the GUI budget, so it runs on the GUI thread (the
  :class:`~oddscope.app.mapview.MapView` debounces it while the view moves; the old image pans/zooms
  with the view meanwhile);
* few points in view: :class:`~oddscope.app.map_items.PointsItem`, a minimal fixed-pixel-size scatter (one
  pre-rendered sprite per colour, one ``drawPixmapFragments`` call), loaded with a margin around the view
  so that panning rarely reloads it.

Selected points are drawn on top as markers (up to ``SELECTION_MARKER_CAP``, beyond that as a binned
image layer).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF

from oddscope.app.map_geometry import bin_index, density_alpha, in_box
from oddscope.app.map_items import PLAIN_COLOR, PointsItem, category_color

SCATTER_THRESHOLD = 20_000  # at most this many points in view: draw markers, else the density image
SELECTION_MARKER_CAP = 50_000  # larger selections are drawn as an image layer
BIN_PX = 2  # density bins are BIN_PX x BIN_PX screen pixels: each point shows as a visible dot

NAN_COLOR = (128, 128, 128, 255)
HIGHLIGHT = (255, 255, 255, 255)  # selection: white stands out from every map and category colour


class MapLayers:
    """The density image, the scatter and the selection overlay of a map, added to its ViewBox (z 0-3).

    The map's widget hands over the points, their colouring and the selection; :meth:`render` draws
    them for a view range, and only the layers whose inputs changed since the last call.
    """

    def __init__(self, viewbox: pg.ViewBox, scatter_threshold: int = SCATTER_THRESHOLD):
        self._vb = viewbox
        self._scatter_threshold = int(scatter_threshold)
        self._x = self._y = np.empty(0, np.float32)
        self._bounds = (0.0, 0.0, 0.0, 0.0)  # x0, x1, y0, y1 of the points
        self.values01 = None  # continuous colours: values scaled to [0, 1], NaN -> 0, float64
        self._nan = None  # bool mask of NaN values, None when there are none
        self._point_rgb = None  # categorical colours: (3, N) float64 rows, as bincount weighs
        self._keys = np.empty(0, np.uint16)  # per point, its row in the palette (marker colours)
        self._palette32 = None  # palette rows as uint32 RGBA, for one-gather colouring of bins
        self._selected = np.empty(0, np.int64)
        self._data_version = 0  # bumped when points or colours change
        self._selection_version = 0
        self._points_key = None  # what the points layer was last rendered for
        self._selection_key = None
        self._scatter_region = None  # (x0, x1, y0, y1, data version) loaded into scatter_item

        self.density_item = pg.ImageItem()
        self.scatter_item = PointsItem(5)
        self.selection_image = pg.ImageItem()
        self.selection_markers = PointsItem(7, outline=(0, 0, 0, 200))
        self.selection_markers.set_colors([HIGHLIGHT])
        for z, item in enumerate([self.density_item, self.scatter_item, self.selection_image,
                                  self.selection_markers]):
            item.setZValue(z)
            item.hide()
            viewbox.addItem(item, ignoreBounds=True)

    # ------------------------------------------------------------------------------------ inputs
    def set_points(self, x: np.ndarray, y: np.ndarray, bounds: tuple) -> None:
        """Draw these points (float32 coordinates, ``bounds`` = (x0, x1, y0, y1)), plain, none selected."""
        self._x, self._y, self._bounds = x, y, bounds
        self.set_selection(np.empty(0, np.int64))
        self.color_plain()

    def color_plain(self) -> None:
        """One colour for every point."""
        self.values01 = self._nan = self._point_rgb = None
        self._keys = np.zeros(self._x.size, np.uint16)
        self._set_palette([PLAIN_COLOR])

    def color_by_values(self, values: np.ndarray, vmin, vmax, lut: np.ndarray) -> tuple[float, float]:
        """Colour by ``values`` (float64, NaN and inf grey) through the 256-entry RGBA ``lut`` from
        ``vmin`` to ``vmax`` (None: the finite range); returns the range used (lo, hi)."""
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
        self.values01 = scaled
        self._nan = nan if nan.any() else None
        self._point_rgb = None
        keys = (scaled * 255 + 0.5).astype(np.uint16)
        keys[nan] = 256
        self._keys = keys
        self._set_palette(np.vstack([lut, NAN_COLOR]))
        return lo, hi

    def color_by_categories(self, codes: np.ndarray, n: int) -> np.ndarray:
        """Colour by category ``codes`` in [-1, n) (-1 = none, grey); returns the palette ((n + 1, 4) RGBA,
        the last row grey)."""
        palette = np.array([category_color(i, n) for i in range(n)] + [NAN_COLOR], np.uint8).reshape(-1, 4)
        keys = np.where(codes < 0, n, codes).astype(np.uint16)
        self._keys = keys
        self._point_rgb = np.ascontiguousarray(palette[keys, :3].T, np.float64)
        self.values01 = self._nan = None
        self._set_palette(palette)
        return palette

    def _set_palette(self, palette) -> None:
        palette = np.ascontiguousarray(palette, np.uint8).reshape(-1, 4)
        self._palette32 = palette.view(np.uint32).ravel()
        self.scatter_item.set_colors(palette)
        self._data_version += 1

    def set_selection(self, selected: np.ndarray) -> None:
        """Highlight ``selected`` (sorted unique int64 indices) from the next :meth:`render` on."""
        self._selected = selected
        self._selection_version += 1

    # --------------------------------------------------------------------------------- rendering
    def render(self, view: tuple[float, float, float, float]) -> None:
        """Draw the layers for the data range ``view`` (x0, x1, y0, y1), those whose inputs changed."""
        shape = self._bin_shape()
        points_key = (view, shape, self._data_version)
        if points_key != self._points_key:
            self._points_key = points_key
            self._render_points(view, shape)
        selection_key = (view, shape, self._data_version, self._selection_version)
        if selection_key != self._selection_key:
            self._selection_key = selection_key
            self._render_selection(view, shape)

    def _bin_shape(self) -> tuple[int, int]:
        return (max(1, int(np.ceil(self._vb.width() / BIN_PX))),
                max(1, int(np.ceil(self._vb.height() / BIN_PX))))

    def _render_points(self, view, shape) -> None:
        x0, x1, y0, y1 = view
        bx0, bx1, by0, by1 = self._bounds
        if x0 <= bx0 and bx1 <= x1 and y0 <= by0 and by1 <= y1:  # all in view: skip the mask
            in_view, n_visible = None, self._x.size
        else:
            in_view = in_box(self._x, self._y, *view)
            n_visible = int(np.count_nonzero(in_view))
        dense = n_visible > self._scatter_threshold
        if dense:
            self._render_density(view, shape, in_view, n_visible)
        else:
            self._load_scatter(view)
        self.density_item.setVisible(dense)
        self.scatter_item.setVisible(not dense)

    def _load_scatter(self, view) -> None:
        """Load the points of the view plus half a view on each side, unless those already are."""
        x0, x1, y0, y1 = view
        loaded = self._scatter_region
        if (loaded is not None and loaded[4] == self._data_version and loaded[0] <= x0
                and x1 <= loaded[1] and loaded[2] <= y0 and y1 <= loaded[3]):
            return
        half_w, half_h = (x1 - x0) / 2, (y1 - y0) / 2
        region = (x0 - half_w, x1 + half_w, y0 - half_h, y1 + half_h)
        mask = in_box(self._x, self._y, *region)
        if np.count_nonzero(mask) > 3 * self._scatter_threshold:
            region, mask = view, in_box(self._x, self._y, *view)
        index = np.flatnonzero(mask)
        self.scatter_item.set_points(self._x[index], self._y[index], self._keys[index])
        self._scatter_region = (*region, self._data_version)

    def _render_density(self, view, shape, in_view, n_visible) -> None:
        """Bin the points in view into an RGBA image.  Pixels are handled as uint32 (one gather from
        the palette) because row-wise uint8 assignments cost ~4x more at a million bins."""
        w, h = shape
        flat, subset = bin_index(self._x, self._y, view, shape, in_view, n_visible)
        n_bins = w * h
        counts = np.bincount(flat, minlength=n_bins)
        if self.values01 is not None:
            values = self.values01 if subset is None else self.values01[subset]
            if self._nan is None:
                sums = np.bincount(flat, weights=values, minlength=n_bins)
                n_finite = counts
            else:
                finite = ~(self._nan if subset is None else self._nan[subset])
                sums = np.bincount(flat[finite], weights=values[finite], minlength=n_bins)
                n_finite = np.bincount(flat[finite], minlength=n_bins)
            key = (sums / np.maximum(n_finite, 1) * 255 + 0.5).astype(np.uint16)
            key[n_finite == 0] = 256  # the palette's NaN colour
            pixels = self._palette32[key]
        elif self._point_rgb is not None:
            colors = self._point_rgb if subset is None else self._point_rgb[:, subset]
            scale = 1.0 / np.maximum(counts, 1)
            rgb = np.empty((n_bins, 4), np.uint8)
            for c in range(3):
                rgb[:, c] = np.bincount(flat, weights=colors[c], minlength=n_bins) * scale
            pixels = rgb.view(np.uint32).ravel()
        else:
            pixels = np.full(n_bins, self._palette32[0], np.uint32)
        rgba = pixels.view(np.uint8).reshape(h, w, 4)
        rgba[..., 3] = density_alpha(counts).reshape(h, w)
        self.density_item.setImage(rgba.transpose(1, 0, 2), autoLevels=False)  # ImageItem: (x, y)
        self.density_item.setRect(QRectF(view[0], view[2], view[1] - view[0], view[3] - view[2]))

    def _render_selection(self, view, shape) -> None:
        """Markers for the selection, or for its part in view, when that is at most
        SELECTION_MARKER_CAP points; otherwise a binned image of the selected points in view."""
        selected = self._selected
        if selected.size > SELECTION_MARKER_CAP:
            sx, sy = self._x[selected], self._y[selected]
            in_view = in_box(sx, sy, *view)
            n_visible = int(np.count_nonzero(in_view))
            if n_visible > SELECTION_MARKER_CAP:
                flat, _ = bin_index(sx, sy, view, shape, in_view, n_visible)
                w, h = shape
                hit = np.bincount(flat, minlength=w * h) > 0
                rgba = np.zeros((h, w, 4), np.uint8)
                rgba.reshape(-1, 4)[hit] = HIGHLIGHT
                self.selection_image.setImage(rgba.transpose(1, 0, 2), autoLevels=False)
                self.selection_image.setRect(
                    QRectF(view[0], view[2], view[1] - view[0], view[3] - view[2]))
                self.selection_image.show()
                self.selection_markers.hide()
                return
            selected = selected[in_view]
        self.selection_markers.set_points(self._x[selected], self._y[selected])
        self.selection_markers.setVisible(selected.size > 0)
        self.selection_image.hide()
