"""The anomaly map drawn over the viewer's image, and the brush that paints a region on it.

A map covers the whole image on a coarse square grid (``map_size`` cells a
side).  It is upsampled once per map (bilinear) to :data:`DRAW_SIZE`, then
coloured on the fixed scale of :mod:`oddscope.core.workflows.map_export`, so a
colour means the same rate on normal pixels on every image and in every
exported PNG.  Above the threshold the colour shows at the chosen opacity;
just below it fades out (a hint of what a lower threshold would add) and the
rest stays clear, so the image itself still reads.  The above-threshold regions
are outlined by a marching-squares contour.  Both are stretched over the
image's pixel rectangle (x = column, y = row).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets
from PySide6.QtCore import Qt

from oddscope.core.models.patches import Calibration
from oddscope.core.models.segmentation_metrics import resize_map
from oddscope.core.workflows.map_export import HEAT_COLOURS, SCALE_MAX, heat_rgb

DRAW_SIZE = 128  # the map is drawn (and contoured) on this grid over the whole image
FADE_UNITS = 1.0  # below the threshold the colour fades out over this many calibrated units
FADE_ALPHA = 0.35  # the faded colour's largest share of the opacity
CONTOUR_COLOUR = (0, 255, 255)
MASK_COLOUR = (255, 60, 200)  # the saved defect mask's outline: the "Paint defect" colour
PAINT_COLOURS = {"normal": (60, 220, 120), "defect": MASK_COLOUR}
PAINT_MAX_SIDE = 1024  # the painted mask's longer side, in mask pixels (over the whole image)


def heat_rgba(values: np.ndarray, threshold: float, opacity: float) -> np.ndarray:
    """Calibrated values -> RGBA uint8: the heat colour, opaque (``opacity``) at and above ``threshold``."""
    rgba = np.empty(values.shape + (4,), np.uint8)
    rgba[..., :3] = heat_rgb(values)
    below = np.clip((values - (threshold - FADE_UNITS)) / FADE_UNITS, 0.0, 1.0) * FADE_ALPHA
    alpha = np.where(values >= threshold, 1.0, below) * opacity
    rgba[..., 3] = np.round(alpha * 255).astype(np.uint8)
    return rgba


def outline_path(grid: np.ndarray, level: float) -> QtGui.QPainterPath:
    """Marching-squares outlines of ``grid >= level`` as (column, row) points of the grid padded by one cell
    (below ``level``, so a region touching the border closes)."""
    padded = np.pad(np.asarray(grid, np.float32), 1, constant_values=min(-1.0, level - 1.0)).T
    return pg.functions.isocurve(padded, level, path=True)


def cells_to_image(n_rows: int, n_cols: int, width: int, height: int) -> QtGui.QTransform:
    """The transform from :func:`outline_path`'s coordinates to the pixels of a ``width`` x ``height`` image."""
    # padded cell c + 1 is image cell c, whose centre lies at (c + 0.5) cells: shift by half a cell, then scale
    return QtGui.QTransform().scale(width / n_cols, height / n_rows).translate(-0.5, -0.5)


class MaskOutline(QtWidgets.QGraphicsPathItem):
    """The outline of the image's saved defect mask (its mask label)."""

    def __init__(self):
        super().__init__()
        pen = QtGui.QPen(QtGui.QColor(*MASK_COLOUR), 2, Qt.DashLine)
        pen.setCosmetic(True)
        self.setPen(pen)

    def set_mask(self, grid: np.ndarray | None, width: int = 0, height: int = 0) -> None:
        """Outline ``grid`` (the mask over the whole image, any resolution) on the image; None clears."""
        if grid is None:
            self.setPath(QtGui.QPainterPath())
            return
        self.setTransform(cells_to_image(grid.shape[0], grid.shape[1], width, height))
        self.setPath(outline_path(grid, 0.5))

    def image_rect(self) -> QtCore.QRectF:
        """The outline's bounding rectangle in image pixels (empty: no mask)."""
        return self.mapRectToParent(self.path().boundingRect())


class HeatLayer(pg.ItemGroup):
    """Heat colours and contour outlines of one map over an image of ``width`` x ``height`` pixels."""

    def __init__(self, threshold: float, opacity: float):
        super().__init__()
        self.threshold, self.opacity = float(threshold), float(opacity)
        self.values: np.ndarray | None = None  # the map upsampled to DRAW_SIZE
        self._rect = QtCore.QRectF()  # the image's pixels, which the map covers
        self.heat = pg.ImageItem(axisOrder="row-major")
        self.contour = QtWidgets.QGraphicsPathItem()
        pen = QtGui.QPen(QtGui.QColor(*CONTOUR_COLOUR), 2)
        pen.setCosmetic(True)  # two screen pixels wide at any zoom
        self.contour.setPen(pen)
        self.addItem(self.heat)
        self.addItem(self.contour)

    def set_map(self, values: np.ndarray | None, width: int = 0, height: int = 0) -> None:
        """Draw ``values`` (a map over the whole image) over ``width`` x ``height`` pixels; None clears."""
        if values is None:
            self.values = None
            self.heat.clear()
            self.contour.setPath(QtGui.QPainterPath())
            return
        self.values = resize_map(values, (DRAW_SIZE, DRAW_SIZE))
        self._rect = QtCore.QRectF(0, 0, width, height)
        self.contour.setTransform(cells_to_image(DRAW_SIZE, DRAW_SIZE, width, height))
        self._redraw()

    def set_threshold(self, threshold: float) -> None:
        self.threshold = float(threshold)
        self._redraw()

    def set_opacity(self, opacity: float) -> None:
        self.opacity = float(opacity)
        self._redraw(contour=False)

    def _redraw(self, contour: bool = True) -> None:
        if self.values is None:
            return
        self.heat.setImage(heat_rgba(self.values, self.threshold, self.opacity), autoLevels=False, levels=(0, 255))
        self.heat.setRect(self._rect)  # after setImage: the rect scales the image's own pixel size
        if contour:
            self.contour.setPath(outline_path(self.values, self.threshold))

    def contour_rect(self) -> QtCore.QRectF:
        """The bounding rectangle of the outlines, in image pixels (empty when nothing is above threshold)."""
        return self.contour.mapRectToParent(self.contour.path().boundingRect())


class PaintLayer(pg.ImageItem):
    """A brush over the image: while shown, a left-button drag paints a disc of ``radius`` image pixels.

    The region is kept as a bool mask over the whole image (longer side
    :data:`PAINT_MAX_SIDE` at most); it takes the mouse only while visible,
    so the viewer pans as usual otherwise.  The wheel still zooms.
    """

    def __init__(self):
        super().__init__(axisOrder="row-major")
        self.mask = np.zeros((1, 1), bool)
        self.colour = PAINT_COLOURS["normal"]
        self.radius = 10.0  # image pixels
        self._scale = 1.0  # mask pixels per image pixel
        self._rect = QtCore.QRectF(0, 0, 1, 1)  # the image's pixels, which the mask covers
        self.setVisible(False)

    def start(self, width: int, height: int, colour) -> None:
        """A fresh, empty mask over an image of ``width`` x ``height`` pixels, painted in ``colour``."""
        self._scale = min(1.0, PAINT_MAX_SIDE / max(width, height))
        self.mask = np.zeros((max(1, round(height * self._scale)), max(1, round(width * self._scale))), bool)
        self.colour = colour
        self._rect = QtCore.QRectF(0, 0, width, height)
        self._redraw()

    def set_colour(self, colour) -> None:
        self.colour = colour
        self._redraw()

    def clear_mask(self) -> None:
        self.mask[:] = False
        self._redraw()

    def paint_at(self, x: float, y: float) -> None:
        """Paint a disc at image pixel (``x``, ``y``)."""
        rows, cols = self.mask.shape
        cx, cy, r = x * self._scale, y * self._scale, max(1.0, self.radius * self._scale)
        yy, xx = np.ogrid[0:rows, 0:cols]
        self.mask |= (xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 <= r * r
        self._redraw()

    def _redraw(self) -> None:
        rgba = np.zeros(self.mask.shape + (4,), np.uint8)
        rgba[self.mask] = (*self.colour, 140)
        self.setImage(rgba, autoLevels=False, levels=(0, 255))
        self.setRect(self._rect)

    def paint_line(self, start: QtCore.QPointF, end: QtCore.QPointF) -> None:
        """Paint discs along ``start`` -> ``end`` (image pixels), close enough to leave no gap."""
        steps = max(1, int(np.ceil(np.hypot(end.x() - start.x(), end.y() - start.y()) / max(1.0, self.radius / 2))))
        for t in np.linspace(0.0, 1.0, steps + 1):
            self.paint_at(start.x() + t * (end.x() - start.x()), start.y() + t * (end.y() - start.y()))

    def mouseDragEvent(self, ev) -> None:
        if ev.button() != Qt.LeftButton:
            ev.ignore()
            return
        ev.accept()
        previous = ev.buttonDownPos() if ev.isStart() else ev.lastPos()
        self.paint_line(self.mapToParent(previous), self.mapToParent(ev.pos()))  # mask -> image pixels

    def mouseClickEvent(self, ev) -> None:
        if ev.button() == Qt.LeftButton:
            ev.accept()
            pos = self.mapToParent(ev.pos())
            self.paint_at(pos.x(), pos.y())


def colour_key(width: int = 120, height: int = 12) -> QtGui.QPixmap:
    """The heat scale 0..SCALE_MAX as a small horizontal bar (the legend)."""
    row = HEAT_COLOURS[np.linspace(0, len(HEAT_COLOURS) - 1, width).astype(int)]
    rgb = np.ascontiguousarray(np.repeat(row[None], height, axis=0))
    image = QtGui.QImage(rgb.data, width, height, 3 * width, QtGui.QImage.Format_RGB888)
    return QtGui.QPixmap.fromImage(image.copy())


def threshold_words(threshold: float) -> str:
    """A threshold in calibrated units, in words: ``3.0 - 1 normal pixel in 1,000``."""
    return f"{threshold:.1f} - 1 normal pixel in {1 / Calibration.false_positive_rate(threshold):,.0f}"


def value_words(value: float) -> str:
    """A map value in words (values beyond the colour scale: rarer than any normal pixel seen)."""
    if value > SCALE_MAX:
        return f"{value:.1f} - rarer than 1 normal pixel in {10 ** SCALE_MAX:,.0f}"
    return threshold_words(value)


KEY_TIP = (f"Colour scale of the anomaly map, 0 to {SCALE_MAX:g} calibrated units: a value v means about "
           "1 normal pixel in 10^v is as anomalous (0: as normal as normal pixels; 3: 1 in 1,000; 6: 1 in a million)")
