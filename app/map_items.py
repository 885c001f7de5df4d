"""What the map draws with (pyqtgraph): its colour maps, category colours and legend, and :class:`PointsItem`
markers."""

from __future__ import annotations

import functools
import html

import numpy as np
import pyqtgraph as pg
import shiboken6
from PySide6 import QtGui
from PySide6.QtCore import QPointF, QRectF, Qt

from oddscope.app.map_render import PLAIN_COLOR

LEGEND_MAX_ROWS = 25

# Perceptual colour maps start near black, which vanishes on the dark background: the lowest part is
# dropped (the colour bar shows the same truncated map, so nothing is misread).
CMAP_START = 0.2
# tab10: distinct on a dark background; more categories get evenly spaced hues.
CATEGORY_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                   "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


def trimmed_colormap(full_map: pg.ColorMap) -> tuple[np.ndarray, pg.ColorMap]:
    """256-entry RGBA table of ``full_map`` without its darkest CMAP_START part, and it as a ColorMap."""
    lut = full_map.getLookupTable(CMAP_START, 1.0, 256, alpha=True).astype(np.uint8)
    return lut, pg.ColorMap(np.linspace(0.0, 1.0, 256), lut)


@functools.lru_cache(maxsize=16)
def named_colormap(name: str) -> tuple[np.ndarray, pg.ColorMap]:
    """:func:`trimmed_colormap` of a named map, made once (10 ms each time otherwise: every re-rank recolours)."""
    lut, colormap = trimmed_colormap(pg.colormap.get(name))
    lut.flags.writeable = False  # shared by every call
    return lut, colormap


def category_color(i: int, n: int) -> tuple:
    """RGBA of category ``i`` of ``n``: tab10 while it suffices, else evenly spaced hues."""
    if n <= len(CATEGORY_COLORS):
        color = QtGui.QColor(CATEGORY_COLORS[i])
    else:
        color = pg.intColor(i, hues=n, values=1, maxValue=255, minValue=150, sat=200)
    return color.red(), color.green(), color.blue(), 255


def fill_legend(legend: pg.LegendItem, label: str, names: list[str], palette: np.ndarray) -> None:
    """Fill ``legend``: the title ``label``, then a dot of ``palette[i]`` and ``names[i]`` per category (past
    LEGEND_MAX_ROWS a last "... and N more" row); shows it."""
    legend.clear()
    legend.addItem(pg.ScatterPlotItem(pen=None, brush=None), f"<b>{html.escape(label)}</b>")
    for i, name in enumerate(names[:LEGEND_MAX_ROWS]):
        sample = pg.ScatterPlotItem(symbol="o", size=9, pen=None, brush=pg.mkBrush(*map(int, palette[i])))
        legend.addItem(sample, html.escape(name))
    if len(names) > LEGEND_MAX_ROWS:
        legend.addItem(pg.ScatterPlotItem(pen=None, brush=None), f"... and {len(names) - LEGEND_MAX_ROWS} more")
    legend.show()


def legend_rows(legend: pg.LegendItem) -> list[str]:
    """The rows :func:`fill_legend` wrote below the title, as plain text; empty while the legend is hidden."""
    if not legend.isVisible():
        return []
    return [html.unescape(label.text) for _, label in legend.items[1:]]


class PointsItem(pg.GraphicsObject):
    """Markers of a fixed pixel size, drawn from a sprite atlas with one ``drawPixmapFragments`` call.

    ``keys`` pick a sprite (a colour of :meth:`set_colors`) per point.  It replaces ScatterPlotItem
    where that one's per-point Python work in ``setData`` (~100 ms per 20k points) would stall the
    view.  ``ring=True`` draws hollow rings (hover / current markers).
    """

    def __init__(self, size: float = 5.0, *, ring: bool = False, outline=None):
        super().__init__()
        self._size = float(size)
        self._ring = ring
        self._outline = outline
        self._colors = np.array([PLAIN_COLOR], np.uint8)
        self._atlas = None  # (QPixmap, sprite side in atlas pixels, device pixel ratio)
        self._x = self._y = np.empty(0)
        self._keys = np.empty(0, np.intp)
        self._bounds = QRectF()

    def set_colors(self, colors) -> None:
        self._colors = np.asarray(colors, np.uint8).reshape(-1, 4)
        self._atlas = None
        self.update()

    def set_points(self, x, y, keys=None) -> None:
        self._x = np.asarray(x, np.float64)
        self._y = np.asarray(y, np.float64)
        self._keys = np.zeros(self._x.size, np.intp) if keys is None else np.asarray(keys, np.intp)
        self.prepareGeometryChange()
        if self._x.size:
            self._bounds = QRectF(QPointF(self._x.min(), self._y.min()),
                                  QPointF(self._x.max(), self._y.max()))
        else:
            self._bounds = QRectF()
        self.update()

    def point_count(self) -> int:
        return int(self._x.size)

    def boundingRect(self) -> QRectF:
        if not self._x.size:
            return QRectF()
        px, py = self.pixelVectors()
        if px is None:
            return QRectF(self._bounds)
        pad_x = np.hypot(px.x(), px.y()) * self._size
        pad_y = np.hypot(py.x(), py.y()) * self._size
        return self._bounds.adjusted(-pad_x, -pad_y, pad_x, pad_y)

    def viewTransformChanged(self) -> None:
        self.prepareGeometryChange()  # the pixel padding of boundingRect changed

    def _sprite_atlas(self, dpr: float):
        if self._atlas is None or self._atlas[2] != dpr:
            side = int(np.ceil((self._size + 2) * dpr))
            atlas = QtGui.QPixmap(side * len(self._colors), side)
            atlas.fill(Qt.transparent)
            painter = QtGui.QPainter(atlas)
            painter.setRenderHint(QtGui.QPainter.Antialiasing)
            diameter = self._size * dpr
            for i, rgba in enumerate(self._colors):
                color = QtGui.QColor(*map(int, rgba))
                margin = (side - diameter) / 2
                rect = QRectF(i * side + margin, margin, diameter, diameter)
                if self._ring:  # a coloured ring on a dark halo: visible on light and dark
                    rect = rect.adjusted(2 * dpr, 2 * dpr, -2 * dpr, -2 * dpr)
                    painter.setBrush(Qt.NoBrush)
                    painter.setPen(QtGui.QPen(QtGui.QColor(0, 0, 0, 200), 4 * dpr))
                    painter.drawEllipse(rect)
                    painter.setPen(QtGui.QPen(color, 2 * dpr))
                else:
                    painter.setPen(QtGui.QPen(QtGui.QColor(*self._outline), dpr)
                                   if self._outline is not None else Qt.NoPen)
                    painter.setBrush(color)
                painter.drawEllipse(rect)
            painter.end()
            self._atlas = (atlas, side, dpr)
        return self._atlas

    def paint(self, painter, option, widget=None):
        if not self._x.size:
            return
        dpr = widget.devicePixelRatioF() if widget is not None else painter.device().devicePixelRatioF()
        atlas, side, dpr = self._sprite_atlas(dpr)
        t = painter.transform()
        dx = t.m11() * self._x + t.m21() * self._y + t.dx()
        dy = t.m12() * self._x + t.m22() * self._y + t.dy()
        device = painter.device()
        w, h = device.width() / dpr, device.height() / dpr
        keep = (dx > -side) & (dx < w + side) & (dy > -side) & (dy < h + side)
        n = int(np.count_nonzero(keep))
        if not n:
            return
        # QPainter::PixmapFragment is 10 qreals: x, y (target centre), sourceLeft, sourceTop, width,
        # height, scaleX, scaleY, rotation, opacity.
        frags = np.empty((n, 10), np.float64)
        frags[:, 0] = dx[keep]
        frags[:, 1] = dy[keep]
        frags[:, 2] = self._keys[keep] * side
        frags[:, 3] = 0
        frags[:, 4:6] = side
        frags[:, 6:8] = 1 / dpr
        frags[:, 8] = 0
        frags[:, 9] = 1
        painter.resetTransform()
        first = shiboken6.wrapInstance(frags.ctypes.data, QtGui.QPainter.PixmapFragment)
        painter.drawPixmapFragments(first, n, atlas)
