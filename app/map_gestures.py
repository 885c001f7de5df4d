"""The map's mouse gestures: the ViewBox that routes left clicks and drags to the map, and the
rectangle / lasso selection drag with its dashed outline."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pyqtgraph as pg
from PySide6 import QtWidgets
from PySide6.QtCore import QPointF, QRectF, Qt


class MapViewBox(pg.ViewBox):
    """ViewBox (locked aspect) that hands left clicks to ``on_click(view pos, modifiers)`` and left drags
    to ``on_drag(event)``, which returns False for a drag it leaves to the ViewBox; the rest pans/zooms."""

    def __init__(self, on_click: Callable, on_drag: Callable[..., bool]):
        super().__init__(lockAspect=True, enableMenu=False)
        self._on_click = on_click
        self._on_drag = on_drag

    def mouseClickEvent(self, ev):
        if ev.button() == Qt.LeftButton:
            ev.accept()
            self._on_click(self.mapToView(ev.pos()), ev.modifiers())
        else:
            super().mouseClickEvent(ev)

    def mouseDragEvent(self, ev, axis=None):
        if ev.button() == Qt.LeftButton and self._on_drag(ev):
            return
        super().mouseDragEvent(ev, axis)


class SelectionDrag:
    """A left drag that selects by rectangle or lasso, outlined in the ViewBox while it lasts.

    On release it calls ``select_rect(x0, x1, y0, y1, add=...)`` or ``select_polygon(vertices, add=...)``
    with data coordinates; Shift and Ctrl drags add to the selection, a drag in the mode replaces it.
    """

    def __init__(self, viewbox: pg.ViewBox, select_rect: Callable, select_polygon: Callable):
        self._vb = viewbox
        self._select_rect = select_rect
        self._select_polygon = select_polygon
        self._drag = None  # (shape, additive, view points, last local pos) during a selection drag
        overlay_pen = pg.mkPen((255, 255, 255, 220), width=1.5, style=Qt.DashLine)
        self.rect_overlay = QtWidgets.QGraphicsRectItem()
        self.lasso_overlay = QtWidgets.QGraphicsPathItem()
        for item in (self.rect_overlay, self.lasso_overlay):
            item.setPen(overlay_pen)
            item.setBrush(pg.mkBrush(255, 255, 255, 30))
            item.setZValue(100)
            item.hide()
            viewbox.addItem(item, ignoreBounds=True)

    @property
    def active(self) -> bool:
        return self._drag is not None

    def start(self, ev, mode: str) -> bool:
        """At a drag's start: begin a selection if the modifiers or ``mode`` ("pan", "rect", "lasso") ask
        for one; False leaves the drag to the ViewBox (it pans)."""
        modifiers = ev.modifiers()
        if modifiers & Qt.ShiftModifier:
            shape, additive = "rect", True
        elif modifiers & Qt.ControlModifier:
            shape, additive = "lasso", True
        elif mode != "pan":
            shape, additive = mode, False
        else:
            return False
        start = self._vb.mapToView(ev.buttonDownPos())
        self._drag = (shape, additive, [(start.x(), start.y())], ev.buttonDownPos())
        return True

    def move(self, ev) -> bool:
        """Follow a drag event of the selection under way (False when none is): grow the outline, and
        select on release."""
        if self._drag is None:
            return False
        ev.accept()
        shape, additive, points, last = self._drag
        pos = self._vb.mapToView(ev.pos())
        if shape == "rect":
            x0, y0 = points[0]
            self.rect_overlay.setRect(QRectF(QPointF(x0, y0), pos).normalized())
            self.rect_overlay.show()
        elif (ev.pos() - last).manhattanLength() >= 2 or ev.isFinish():
            points.append((pos.x(), pos.y()))  # keep vertices >= 2 px apart: short polygon
            self._drag = (shape, additive, points, ev.pos())
            self.lasso_overlay.setPath(pg.arrayToQPath(*np.array(points + points[:1]).T))
            self.lasso_overlay.show()
        if ev.isFinish():
            self._drag = None
            self.rect_overlay.hide()
            self.lasso_overlay.hide()
            if shape == "rect":
                self._select_rect(points[0][0], pos.x(), points[0][1], pos.y(), add=additive)
            else:
                self._select_polygon(points, add=additive)
        return True
