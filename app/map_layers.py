"""The map's point layers, drawn by level of detail for the visible range, and the colours they draw with.

Why not one ``pg.ScatterPlotItem``: at 1M points its ``setData`` takes ~2.3 s and a repaint ~255 ms
on this machine, and even at 20k points ``setData`` costs 70-250 ms of per-point Python work.  So
:class:`MapLayers` re-renders for the visible range:

* many points in view: one ``pg.ImageItem`` binned to ``BIN_PX`` screen pixels with ``np.bincount``
  (colour = mean value per bin through the colour map, or mean category colour; alpha = log count).
  Binning 1M points takes ~30-60 ms, inside the GUI budget, so below ``ASYNC_POINTS`` it runs on the GUI
  thread; at 5M it takes 0.2-0.4 s, so bigger maps are binned (and coloured) in a worker thread
  (:mod:`oddscope.app.map_render`).  The :class:`~oddscope.app.mapview.MapView` debounces renders while the
  view moves; the old image pans/zooms with the view meanwhile;
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

from oddscope.app.map_geometry import bin_index, in_box
from oddscope.app.map_items import PointsItem, category_color
from oddscope.app.map_render import (
    ASYNC_POINTS,
    Colouring,
    Density,
    Points,
    category_colouring,
    plain_colouring,
    plan_points,
    value_colouring,
)
from oddscope.app.worker import Lane, Task

SCATTER_THRESHOLD = 20_000  # at most this many points in view: draw markers, else the density image
SELECTION_MARKER_CAP = 50_000  # larger selections are drawn as an image layer
BIN_PX = 2  # density bins are BIN_PX x BIN_PX screen pixels: each point shows as a visible dot

HIGHLIGHT = (255, 255, 255, 255)  # selection: white stands out from every map and category colour


class MapLayers:
    """The density image, the scatter and the selection overlay of a map, added to its ViewBox (z 0-3).

    The map's widget hands over the points, their colouring and the selection; :meth:`render` draws
    them for a view range, and only the layers whose inputs changed since the last call.  From
    :data:`~oddscope.app.map_render.ASYNC_POINTS` points on, colourings and the points layer are worked
    out in ``lane`` (a worker thread, newest request wins) and shown when ready; the old image pans and
    zooms with the view meanwhile.
    """

    def __init__(self, viewbox: pg.ViewBox, scatter_threshold: int = SCATTER_THRESHOLD, lane: Lane | None = None):
        self._vb = viewbox
        self._scatter_threshold = int(scatter_threshold)
        self._lane = lane
        self._points = Points(np.empty(0, np.float32), np.empty(0, np.float32), (0.0, 0.0, 0.0, 0.0),
                              plain_colouring(0))
        self._selected = np.empty(0, np.int64)
        self._data_version = 0  # bumped when points or colours change
        self._selection_version = 0
        self._points_key = None  # what the points layer was last rendered (or asked to be) for
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

    @property
    def colouring(self) -> Colouring:
        """How the points are coloured now."""
        return self._points.colouring

    @property
    def in_background(self) -> bool:
        """Whether colourings and renders of these points run in the lane (a big map)."""
        return self._lane is not None and self._points.x.size >= ASYNC_POINTS

    @property
    def busy(self) -> bool:
        """A colouring or render is still being worked out in the lane."""
        return self._lane is not None and bool(self._lane.tasks())

    # ------------------------------------------------------------------------------------ inputs
    def set_points(self, x: np.ndarray, y: np.ndarray, bounds: tuple) -> None:
        """Draw these points (float32 coordinates, ``bounds`` = (x0, x1, y0, y1)), plain, none selected."""
        if self._lane is not None:
            self._lane.cancel_all()  # a colouring or render of the old points
        self._points = Points(x, y, bounds, plain_colouring(x.size))
        self.set_selection(np.empty(0, np.int64))
        self._colouring_changed()

    def color_by_values(self, values: np.ndarray, vmin, vmax, lut: np.ndarray, then) -> None:
        """Colour by ``values`` (NaN and inf grey) through the 256-entry RGBA ``lut`` from ``vmin`` to ``vmax``
        (None: the finite range); ``then(lo, hi)`` gets the range used, once the colouring is in place."""
        def show(result) -> None:
            colouring, lo, hi = result
            self._use(colouring)
            then(lo, hi)

        self._colour(value_colouring, (values, vmin, vmax, lut), show)

    def color_by_categories(self, codes: np.ndarray, n: int, then) -> None:
        """Colour by category ``codes`` in [-1, n) (-1 = none, grey); ``then(palette)`` gets the (n + 1, 4) RGBA
        palette (the last row grey) once the colouring is in place."""
        def show(colouring: Colouring) -> None:
            self._use(colouring)
            then(colouring.palette)

        self._colour(category_colouring, (codes, [category_color(i, n) for i in range(n)]), show)

    def _colour(self, fn, args, then) -> None:
        """``then(fn(*args))``: at once, or from the lane for a big map (if its points are still shown)."""
        if not self.in_background:
            then(fn(*args))
            return
        points = self._points
        task = Task("map", "Colouring the map", fn, *args)
        task.finished.connect(lambda result: then(result) if points.x is self._points.x else None)
        self._lane.submit(task)

    def _use(self, colouring: Colouring) -> None:
        p = self._points
        self._points = Points(p.x, p.y, p.bounds, colouring)
        self._colouring_changed()

    def _colouring_changed(self) -> None:
        self.scatter_item.set_colors(self._points.colouring.palette)
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
            self._render_points(view, shape, points_key)
        selection_key = (view, shape, self._data_version, self._selection_version)
        if selection_key != self._selection_key:
            self._selection_key = selection_key
            self._render_selection(view, shape)

    def _bin_shape(self) -> tuple[int, int]:
        return (max(1, int(np.ceil(self._vb.width() / BIN_PX))),
                max(1, int(np.ceil(self._vb.height() / BIN_PX))))

    def _render_points(self, view, shape, key) -> None:
        loaded = self._scatter_region
        loaded = loaded[:4] if loaded is not None and loaded[4] == self._data_version else None
        args = (self._points, view, shape, self._scatter_threshold, loaded)
        if not self.in_background:
            self._show_points(plan_points(*args), self._data_version)
            return
        version = self._data_version
        task = Task("map", "Drawing the map", plan_points, *args)
        task.finished.connect(lambda plan: self._show_points(plan, version) if key == self._points_key else None)
        self._lane.submit(task)

    def _show_points(self, plan, version: int) -> None:
        dense = isinstance(plan, Density)
        if dense:
            self.density_item.setImage(plan.rgba, autoLevels=False)
            x0, x1, y0, y1 = plan.view
            self.density_item.setRect(QRectF(x0, y0, x1 - x0, y1 - y0))
        elif plan.index is not None:
            p = self._points
            self.scatter_item.set_points(p.x[plan.index], p.y[plan.index], p.colouring.keys[plan.index])
            self._scatter_region = (*plan.region, version)
        self.density_item.setVisible(dense)
        self.scatter_item.setVisible(not dense)

    def _render_selection(self, view, shape) -> None:
        """Markers for the selection, or for its part in view, when that is at most
        SELECTION_MARKER_CAP points; otherwise a binned image of the selected points in view."""
        selected, x, y = self._selected, self._points.x, self._points.y
        if selected.size > SELECTION_MARKER_CAP:
            sx, sy = x[selected], y[selected]
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
        self.selection_markers.set_points(x[selected], y[selected])
        self.selection_markers.setVisible(selected.size > 0)
        self.selection_image.hide()
