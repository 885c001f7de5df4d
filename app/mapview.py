"""Scalable scatter map of an embedding (UMAP) of up to ~1,000,000 images: the :class:`MapView` widget.

It owns the toolbar, the points and their colouring (colour bar, legend), the coordinate transforms,
picking, the selection and the mouse; :class:`~oddscope.app.map_layers.MapLayers` draws the points by level
of detail (density image or scatter) and the selection, re-rendered for the visible range (debounced by a
``QTimer`` while the view moves).  Rings mark the hovered and the current point.

Picking (hover, click) queries a ``scipy.spatial.cKDTree`` that :meth:`MapView.set_points` builds as a task in its
latest-wins ``map`` lane (scipy releases the GIL while building, 0.4-0.9 s at 1M), so it never blocks the GUI; until
the tree is ready, picking scans all points with NumPy (~2-5 ms at 1M).  No Qt object is touched off the GUI thread.
"""

from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets
from PySide6.QtCore import QPointF, Qt, Signal
from scipy.spatial import cKDTree

from oddscope.app.map_geometry import in_box, points_in_polygon
from oddscope.app.map_gestures import MapViewBox, SelectionDrag
from oddscope.app.map_items import PointsItem, fill_legend, legend_rows, named_colormap, trimmed_colormap
from oddscope.app.map_layers import SCATTER_THRESHOLD, MapLayers
from oddscope.app.map_render import MapPoints, map_points
from oddscope.app.worker import Lane

PICK_RADIUS_PX = 6
DEBOUNCE_MS = 40  # re-render this long after the view stopped changing...
MAX_DEFER_S = 0.15  # ...but at least this often while it keeps changing

BACKGROUND = (30, 32, 38)
HOVER_COLOR = (0, 220, 255, 255)
CURRENT_COLOR = (255, 200, 0, 255)


class MapView(QtWidgets.QWidget):
    """Interactive 2-D map of up to ~1M points: colour by score or category, hover, pick, select.

    Selection: click selects one point, Ctrl-click toggles, Shift-click adds.  Drags select by
    rectangle or lasso: the toolbar mode (pan / rectangle / lasso; keys P, R, L) decides what a plain
    drag does; Shift-drag draws a rectangle and Ctrl-drag a lasso in any mode, and those add to the
    selection.  Esc clears it.  A click on empty space does nothing (no accidental loss of a big
    lasso selection).
    """

    hovered = Signal(int)  # index under the cursor, -1 when none
    clicked = Signal(int)
    selection_changed = Signal(object)  # sorted unique int64 indices

    def __init__(self, parent=None, *, scatter_threshold: int = SCATTER_THRESHOLD,
                 pick_radius_px: float = PICK_RADIUS_PX):
        super().__init__(parent)
        self._pick_radius_px = float(pick_radius_px)
        self._x = self._y = np.empty(0, np.float32)
        self._bounds = (0.0, 0.0, 0.0, 0.0)  # x0, x1, y0, y1 of the points
        self._tree = None
        self._tree_token = None
        self._tree_lane = Lane("map", parent=self)  # latest wins: a build for points no longer shown is dropped
        self._selected = np.empty(0, np.int64)
        self._current = None
        self._hover = -1
        self._tooltip_provider = None
        self._mode = "pan"
        self._defer_start = 0.0

        self.plot_widget = pg.GraphicsLayoutWidget()
        self.plot_widget.setBackground(BACKGROUND)
        self.plot_widget.ci.setContentsMargins(2, 10, 2, 10)  # room for the colour bar's end labels
        self._vb = MapViewBox(self._on_click, self._on_drag)
        self.plot_widget.addItem(self._vb, row=0, col=0)

        self._layers = MapLayers(self._vb, scatter_threshold, Lane("map_render", parent=self))
        self.density_item = self._layers.density_item
        self.scatter_item = self._layers.scatter_item
        self.selection_image = self._layers.selection_image
        self.selection_markers = self._layers.selection_markers
        self.hover_marker = PointsItem(14, ring=True)
        self.hover_marker.set_colors([HOVER_COLOR])
        self.current_marker = PointsItem(20, ring=True)
        self.current_marker.set_colors([CURRENT_COLOR])
        for z, item in enumerate([self.hover_marker, self.current_marker], start=4):  # above the layers
            item.setZValue(z)
            item.hide()
            self._vb.addItem(item, ignoreBounds=True)
        self._drag = SelectionDrag(self._vb, self.select_rect, self.select_polygon)

        self.colorbar = pg.ColorBarItem(values=(0, 1), colorMap="viridis", width=14,
                                        interactive=False, colorMapMenu=False)
        self.colorbar.getAxis("left").setTextPen((220, 220, 220))
        self.colorbar.getAxis("right").setTextPen((220, 220, 220))
        self.legend = pg.LegendItem(offset=(-10, 10), brush=(0, 0, 0, 170), pen=(90, 90, 90),
                                    labelTextColor=(230, 230, 230))
        self.legend.setParentItem(self._vb)
        self.legend.hide()

        self.popup = QtWidgets.QLabel(self, Qt.ToolTip)
        self.popup.setStyleSheet("background: #202226; color: #e6e6e6; border: 1px solid #555;"
                                 " padding: 3px;")

        self._refresh_timer = QtCore.QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self._refresh_timer.timeout.connect(self.refresh)
        self._vb.sigRangeChanged.connect(self._on_range_changed)
        self._vb.sigResized.connect(self._on_range_changed)
        self.plot_widget.viewport().installEventFilter(self)

        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self._make_toolbar())
        layout.addWidget(self.plot_widget)

    # ----------------------------------------------------------------------------------- toolbar
    def _make_toolbar(self) -> QtWidgets.QToolBar:
        bar = QtWidgets.QToolBar(self)
        group = QtGui.QActionGroup(self)
        self._mode_actions = {}
        for mode, text, key, tip in [
            ("pan", "Pan", "P", "Drag pans, wheel zooms (P)"),
            ("rect", "Rectangle", "R", "Drag selects a rectangle (R); Shift-drag adds one in any mode"),
            ("lasso", "Lasso", "L", "Drag draws a lasso (L); Ctrl-drag adds one in any mode"),
        ]:
            action = QtGui.QAction(text, self, checkable=True, toolTip=tip,
                                   shortcut=QtGui.QKeySequence(key))
            action.setShortcutContext(Qt.WidgetWithChildrenShortcut)
            action.triggered.connect(lambda _=False, m=mode: self.set_mode(m))
            group.addAction(action)
            bar.addAction(action)
            self.addAction(action)
            self._mode_actions[mode] = action
        self._mode_actions["pan"].setChecked(True)
        bar.addSeparator()
        for text, key, tip, slot in [
            ("Fit", "F", "Show all points (F)", self.auto_range),
            ("Clear", "Esc", "Clear the selection (Esc)", self.clear_selection),
        ]:
            action = QtGui.QAction(text, self, toolTip=tip, shortcut=QtGui.QKeySequence(key))
            action.setShortcutContext(Qt.WidgetWithChildrenShortcut)
            action.triggered.connect(slot)
            bar.addAction(action)
            self.addAction(action)
        return bar

    def set_mode(self, mode: str) -> None:
        """What a plain left drag does: "pan", "rect" or "lasso"."""
        if mode not in self._mode_actions:
            raise ValueError(f"mode must be one of {sorted(self._mode_actions)}, not {mode!r}")
        self._mode = mode
        self._mode_actions[mode].setChecked(True)

    def mode(self) -> str:
        return self._mode

    # -------------------------------------------------------------------------------------- data
    def set_points(self, points) -> None:
        """Show the points ``points`` ((N, 2) coordinates, e.g. a UMAP, or their :class:`MapPoints` made
        beforehand); clears colours, selection and current item.

        Starts building the picking index as a background task and fits the view.
        """
        points = points if isinstance(points, MapPoints) else map_points(points)
        self._x, self._y = points.x, points.y
        if self._x.size:
            self._bounds = points.bounds
        self._tree = None
        self._tree_token = token = object()
        if self._x.size:
            self._tree_lane.run("map", "Map picking index", self._build_tree, points, token)
        self._selected = np.empty(0, np.int64)
        self._current = None
        self.current_marker.hide()
        self._set_hover(-1)
        self._layers.set_points(self._x, self._y, self._bounds)
        self.legend.hide()
        self._hide_colorbar()
        self.auto_range()  # renders

    def _build_tree(self, points: MapPoints, token: object, progress=None) -> None:
        """Task (worker thread): publishes the tree only if these are still the points shown."""
        tree = cKDTree(np.column_stack([points.x, points.y]), balanced_tree=False, compact_nodes=False)
        if token is self._tree_token:
            self._tree = tree

    def wait_for_index(self, timeout: float | None = None) -> bool:
        """Block until the picking index is built (for scripts and benchmarks); True when ready."""
        self._tree_lane.wait(-1 if timeout is None else int(timeout * 1000))
        return self._tree is not None

    @property
    def drawing(self) -> bool:
        """A big map's colouring or view image is still being worked out in the background."""
        return self._layers.busy

    def point_count(self) -> int:
        return int(self._x.size)

    def set_colors(self, values, cmap="viridis", vmin=None, vmax=None,
                   label: str = "anomaly score") -> None:
        """Colour by a continuous value per point (NaN in grey) with a colour bar.

        ``cmap`` is a pyqtgraph colour map name or a ``pg.ColorMap`` (its darkest CMAP_START part
        is dropped, see :mod:`oddscope.app.map_items`); ``vmin``/``vmax`` default to the finite range of ``values``.
        A big map (:data:`~oddscope.app.map_render.ASYNC_POINTS`) is coloured in a worker: the colours show a
        moment later (:attr:`drawing` meanwhile).
        """
        values = np.asarray(values, np.float64)
        if values.shape != self._x.shape:
            raise ValueError(f"values must have shape ({self._x.size},), got {values.shape}")
        lut, colormap = named_colormap(cmap) if isinstance(cmap, str) else trimmed_colormap(cmap)

        def show(lo: float, hi: float) -> None:
            self.legend.hide()
            self.colorbar.setColorMap(colormap)
            self.colorbar.setLevels((lo, hi))
            self.colorbar.getAxis("left").setLabel(label, color="#dddddd")
            if self.colorbar.scene() is None:
                self.plot_widget.addItem(self.colorbar, row=0, col=1)
            self.refresh()

        self._layers.color_by_values(values, vmin, vmax, lut, show)

    def set_categories(self, codes, names, label: str = "tag") -> None:
        """Colour by category ``codes`` (-1 = none, grey) with a legend of ``names``."""
        codes = np.asarray(codes)
        names = [str(n) for n in names]
        if codes.shape != self._x.shape or (codes.size and codes.dtype.kind not in "iu"):
            raise ValueError(f"codes must be integers of shape ({self._x.size},)")
        if codes.size and (codes.max() >= len(names) or codes.min() < -1):
            raise ValueError(f"codes must lie in [-1, {len(names) - 1}] for {len(names)} names")
        def show(palette: np.ndarray) -> None:
            self._hide_colorbar()
            fill_legend(self.legend, label, names, palette)
            self.refresh()

        self._layers.color_by_categories(codes, len(names), show)

    def legend_names(self) -> list[str]:
        """Legend rows below its title: the category names (past LEGEND_MAX_ROWS a last
        "... and N more"); empty when colouring by a continuous value."""
        return legend_rows(self.legend)

    def _hide_colorbar(self) -> None:
        if self.colorbar.scene() is not None:
            self.plot_widget.ci.removeItem(self.colorbar)

    # ---------------------------------------------------------------------------------- the view
    def view_range(self) -> tuple[float, float, float, float]:
        """Visible data range ``(x0, x1, y0, y1)``."""
        (x0, x1), (y0, y1) = self._vb.viewRange()
        return x0, x1, y0, y1

    def set_view_range(self, x0: float, x1: float, y0: float, y1: float) -> None:
        """Show at least this data range (the locked aspect may widen one side); renders now."""
        # plain floats: NumPy float32 bounds overflow in pyqtgraph's comparisons with its limits
        self._vb.setRange(xRange=(float(x0), float(x1)), yRange=(float(y0), float(y1)), padding=0)
        self.refresh()

    def auto_range(self) -> None:
        """Fit all points in the view."""
        if self._x.size:
            x0, x1, y0, y1 = self._bounds
            pad_x, pad_y = max((x1 - x0) * 0.03, 1e-6), max((y1 - y0) * 0.03, 1e-6)
            self.set_view_range(x0 - pad_x, x1 + pad_x, y0 - pad_y, y1 + pad_y)
        else:
            self.set_view_range(-1.0, 1.0, -1.0, 1.0)

    def _data_to_widget_affine(self) -> tuple[float, float, float, float]:
        """``(sx, ox, sy, oy)`` with widget x = ox + sx * data x, widget y = oy + sy * data y."""
        to_viewport = self.plot_widget.viewportTransform()
        offset = self.plot_widget.viewport().mapTo(self, QtCore.QPoint(0, 0))
        p0 = to_viewport.map(self._vb.mapViewToScene(QPointF(0.0, 0.0)))
        p1 = to_viewport.map(self._vb.mapViewToScene(QPointF(1.0, 1.0)))
        return (p1.x() - p0.x(), p0.x() + offset.x(), p1.y() - p0.y(), p0.y() + offset.y())

    def data_to_widget(self, xy) -> np.ndarray:
        """Map data points ((N, 2) or (2,)) to this widget's pixel coordinates (same shape)."""
        xy = np.asarray(xy, np.float64)
        sx, ox, sy, oy = self._data_to_widget_affine()
        return np.stack([ox + sx * xy[..., 0], oy + sy * xy[..., 1]], axis=-1)

    def widget_to_data(self, pos) -> tuple[float, float]:
        """Map a position in this widget (QPoint/QPointF) to data coordinates."""
        sx, ox, sy, oy = self._data_to_widget_affine()
        return (pos.x() - ox) / sx, (pos.y() - oy) / sy

    def pick_at(self, widget_pos) -> int | None:
        """Index of the point nearest to ``widget_pos`` within the pick radius, else None."""
        x, y = self.widget_to_data(widget_pos)
        return self._nearest(x, y)

    def _pick_radius(self) -> float:
        """Pick radius in data units (the aspect is locked, so one scale serves both axes)."""
        sx, _, sy, _ = self._data_to_widget_affine()
        return self._pick_radius_px / max(abs(sx), abs(sy), 1e-12)

    def _nearest(self, x: float, y: float) -> int | None:
        if not self._x.size:
            return None
        radius = self._pick_radius()
        tree = self._tree
        if tree is not None:
            dist, index = tree.query((x, y), distance_upper_bound=radius)
            return int(index) if np.isfinite(dist) else None
        d2 = (self._x - np.float32(x)) ** 2 + (self._y - np.float32(y)) ** 2
        index = int(np.argmin(d2))
        return index if d2[index] <= radius * radius else None

    # --------------------------------------------------------------------------------- rendering
    def _on_range_changed(self, *_) -> None:
        """Debounce: re-render DEBOUNCE_MS after the last change, but at least every MAX_DEFER_S."""
        now = time.monotonic()
        if not self._refresh_timer.isActive():
            self._defer_start = now
            self._refresh_timer.start()
        elif now - self._defer_start < MAX_DEFER_S:
            self._refresh_timer.start()

    def refresh(self) -> None:
        """Render the layers for the current view now, if anything changed (the debounce timer
        calls this; tests and benchmarks call it to skip the wait)."""
        self._refresh_timer.stop()
        self._layers.render(self.view_range())

    # --------------------------------------------------------------------------------- selection
    def selection(self) -> np.ndarray:
        """Selected indices, sorted unique int64 (a copy)."""
        return self._selected.copy()

    def set_selection(self, indices, emit: bool = False) -> None:
        """Select ``indices`` (e.g. from another view); emits selection_changed only if ``emit``."""
        self._apply_selection(indices, emit)

    def clear_selection(self) -> None:
        self._apply_selection([], emit=True)

    def select_rect(self, x0: float, x1: float, y0: float, y1: float, add: bool = False) -> None:
        """Select the points inside a data rectangle (as a rectangle drag does); emits."""
        x0, x1 = sorted((x0, x1))
        y0, y1 = sorted((y0, y1))
        hits = np.flatnonzero(in_box(self._x, self._y, x0, x1, y0, y1))
        self._apply_selection(np.concatenate([self._selected, hits]) if add else hits, emit=True)

    def select_polygon(self, polygon, add: bool = False) -> None:
        """Select the points inside a data polygon ((M, 2) vertices, as a lasso does); emits."""
        polygon = np.asarray(polygon, np.float64).reshape(-1, 2)
        hits = np.empty(0, np.int64)
        if len(polygon) >= 3:
            (x0, y0), (x1, y1) = polygon.min(axis=0), polygon.max(axis=0)
            candidates = np.flatnonzero(in_box(self._x, self._y, x0, x1, y0, y1))
            inside = points_in_polygon(self._x[candidates], self._y[candidates], polygon)
            hits = candidates[inside]
        self._apply_selection(np.concatenate([self._selected, hits]) if add else hits, emit=True)

    def _apply_selection(self, indices, emit: bool) -> None:
        indices = np.asarray(indices, np.int64).ravel()
        if indices.size and (indices.min() < 0 or indices.max() >= self._x.size):
            raise IndexError(f"selection indices must lie in [0, {self._x.size})")
        # sorted unique through a mask: O(N), where np.unique takes ~50 ms for 100k indices here
        mask = np.zeros(self._x.size, bool)
        mask[indices] = True
        selected = np.flatnonzero(mask)
        if np.array_equal(selected, self._selected):
            return
        self._selected = selected
        self._layers.set_selection(selected)
        self.refresh()
        if emit:
            self.selection_changed.emit(selected.copy())

    def set_current(self, index: int | None) -> None:
        """Mark the point the app shows in detail with a ring (None removes it)."""
        if index is None:
            self._current = None
            self.current_marker.hide()
            return
        index = int(index)
        if not 0 <= index < self._x.size:
            raise IndexError(f"index {index} out of range for {self._x.size} points")
        self._current = index
        self.current_marker.set_points(self._x[[index]], self._y[[index]])
        self.current_marker.show()

    def current(self) -> int | None:
        return self._current

    # ----------------------------------------------------------------------------- mouse + hover
    def set_tooltip_provider(self, provider) -> None:
        """``provider(index) -> QPixmap | str | None`` fills the popup shown for the hovered point."""
        self._tooltip_provider = provider

    def _on_click(self, pos: QPointF, modifiers) -> None:
        index = self._nearest(pos.x(), pos.y())
        if index is None:
            return
        if modifiers & Qt.ControlModifier:
            others = self._selected[self._selected != index]
            selected = others if others.size < self._selected.size else np.append(others, index)
        elif modifiers & Qt.ShiftModifier:
            selected = np.append(self._selected, index)
        else:
            selected = [index]
        self._apply_selection(selected, emit=True)
        self.clicked.emit(index)

    def _on_drag(self, ev) -> bool:
        """Handle a left drag if it selects; False lets the ViewBox pan."""
        if ev.isStart() and self._drag.start(ev, self._mode):
            self._set_hover(-1)
        return self._drag.move(ev)

    def eventFilter(self, watched, event) -> bool:
        """Hover from the viewport's own mouse moves: pyqtgraph's sigMouseMoved is rate limited and
        may drop the last move, which would leave a stale hover where the mouse stopped."""
        kind = event.type()
        if kind == QtCore.QEvent.MouseMove and not event.buttons() and not self._drag.active:
            pos = event.position()
            self._set_hover(self._index_under(pos),
                            self.plot_widget.viewport().mapToGlobal(pos.toPoint()))
        elif kind == QtCore.QEvent.Leave:
            self._set_hover(-1)
        return False

    def _index_under(self, viewport_pos: QPointF) -> int:
        scene_pos = self.plot_widget.mapToScene(viewport_pos.toPoint())
        if not self._vb.sceneBoundingRect().contains(scene_pos):
            return -1
        pos = self._vb.mapSceneToView(scene_pos)
        found = self._nearest(pos.x(), pos.y())
        return -1 if found is None else found

    def _set_hover(self, index: int, global_pos: QtCore.QPoint | None = None) -> None:
        if index == self._hover:
            return
        self._hover = index
        if index >= 0:
            self.hover_marker.set_points(self._x[[index]], self._y[[index]])
            self.hover_marker.show()
        else:
            self.hover_marker.hide()
        self._show_popup(index, global_pos)
        self.hovered.emit(index)

    def _show_popup(self, index: int, global_pos) -> None:
        content = None
        if index >= 0 and self._tooltip_provider is not None:
            content = self._tooltip_provider(index)
        if content is None or global_pos is None:
            self.popup.hide()
            return
        if isinstance(content, QtGui.QPixmap):
            self.popup.setPixmap(content)
        else:
            self.popup.setText(str(content))
        self.popup.adjustSize()
        self.popup.move(global_pos + QtCore.QPoint(16, 16))
        self.popup.show()
