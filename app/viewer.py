"""The selected image, large: zoom, pan, fit, stretch, its metadata and scores, and overlay layers.

Pixels are decoded and stretched on a worker thread (a 100-megapixel FITS takes
seconds) from the raw values kept in a small cache, so moving the contrast
slider re-stretches without reading the file again.  Results of superseded
requests are dropped by a generation counter.  Overlays (e.g. a segmentation
heat map) plug in as named layers drawn in image pixel coordinates (x = column,
y = row, origin at the top-left corner).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets
from PySide6.QtCore import Qt, Signal

from oddscope.app.worker import Task
from oddscope.core.data.images import STRETCHES, load_array, to_rgb8
from oddscope.core.data.science import NO_STEPS, ScienceSteps, crop_box

AUTO = "auto"
AS_ENCODED = "as encoded"  # the stretch choice that shows the project's science steps, as the encoder saw them
RAW_CACHE_BYTES = 512 * 2**20  # raw arrays kept for re-stretching
RENDER_CACHE_ITEMS = 12
RESTRETCH_DELAY_MS = 60  # coalesce slider moves into one re-stretch
FIELD_COLUMN_MAX = 0.45  # the field-name column's largest share of the table: values keep the rest


def render(raw: np.ndarray, stretch: str, contrast: float,
           steps: ScienceSteps = NO_STEPS) -> tuple[np.ndarray, tuple[int, int]]:
    """``(rgb, (top, left))``: 8-bit RGB of ``raw`` for display (``auto``: the core's default for the pixel
    type; ``as encoded``: through the project's science ``steps``) and where it sits in the image, which
    the steps' crop moves (overlays stay in the whole image's pixel coordinates)."""
    if stretch == AS_ENCODED:
        rows, cols = crop_box(raw.shape, steps.crop) if steps.crop else (slice(0, None), slice(0, None))
        return steps.apply(raw), (rows.start, cols.start)
    return to_rgb8(raw, None if stretch == AUTO else stretch, contrast), (0, 0)


def _decode(path: str, raw, stretch: str, contrast: float, steps: ScienceSteps, progress=None):
    """Worker thread: read (unless cached) and stretch."""
    if raw is None:
        raw = load_array(path)
    progress.check()
    return raw, render(raw, stretch, contrast, steps)


class _ImageBox(pg.ViewBox):
    """Aspect-locked, y-down view box; a double-click fits the image."""

    def __init__(self):
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)

    def mouseClickEvent(self, ev):
        if ev.double() and ev.button() == Qt.LeftButton:
            ev.accept()
            self.autoRange(padding=0.02)
        else:
            super().mouseClickEvent(ev)


class _FieldTable(QtWidgets.QTableWidget):
    """Field / value rows: the name column fits its names up to FIELD_COLUMN_MAX of the width, the
    value column stretches over the rest; long texts end in "..." (one line, not a clipped second
    line) and show in full as a tooltip."""

    def __init__(self):
        super().__init__(0, 2)
        self.setHorizontalHeaderLabels(["Field", "Value"])
        self.horizontalHeader().setStretchLastSection(True)
        self.setWordWrap(False)
        self.setTextElideMode(Qt.ElideRight)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)

    def fit_name_column(self) -> None:
        width = min(self.sizeHintForColumn(0), int(self.viewport().width() * FIELD_COLUMN_MAX))
        self.setColumnWidth(0, max(width, self.horizontalHeader().minimumSectionSize()))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.fit_name_column()


class ImageViewer(QtWidgets.QWidget):
    image_shown = Signal(int)  # item id whose pixels are now on screen

    def __init__(self, parent=None, pool: QtCore.QThreadPool | None = None):
        super().__init__(parent)
        self._pool = pool or QtCore.QThreadPool.globalInstance()
        self.item_id: int | None = None
        self.path: str | None = None
        self._generation = 0
        self._settled = 0  # the newest request that ended (drawn, or failed with a message)
        self._task: Task | None = None
        self._raw_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._render_cache: OrderedDict[tuple, tuple] = OrderedDict()  # key -> (rgb, origin)
        self._steps = NO_STEPS  # the project's science steps before the encoder
        self._layers: dict[str, QtWidgets.QGraphicsItem] = {}
        self._layer_actions: dict[str, QtGui.QAction] = {}

        self.title = QtWidgets.QLabel("No image selected")
        self.title.setObjectName("viewerTitle")
        self.title.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.title.setWordWrap(True)
        self.label_badge = QtWidgets.QLabel()
        self.label_badge.setObjectName("labelBadge")
        self.label_badge.setToolTip("Your relevance score (0-5) and tags for this image")

        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground((12, 13, 16))
        self.graphics.ci.setContentsMargins(0, 0, 0, 0)
        self.view_box = _ImageBox()
        self.graphics.addItem(self.view_box)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.view_box.addItem(self.image_item)
        self.message = QtWidgets.QLabel(alignment=Qt.AlignCenter, wordWrap=True)
        self.message.setObjectName("viewerMessage")
        self.stack = QtWidgets.QStackedWidget()
        self.stack.addWidget(self.graphics)
        self.stack.addWidget(self.message)
        self.graphics.setToolTip("Wheel zooms, drag pans, double-click (or F) fits the image")

        self.info = _FieldTable()
        self.info.verticalHeader().hide()
        self.info.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.info.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        self.info.setSelectionMode(QtWidgets.QAbstractItemView.NoSelection)
        self.info.setFocusPolicy(Qt.NoFocus)
        self.info.setToolTip("Metadata of this image and every detector's score")

        header = QtWidgets.QHBoxLayout()
        header.addWidget(self.title, 1)
        header.addWidget(self.label_badge)
        top = QtWidgets.QWidget()
        top_layout = QtWidgets.QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.setSpacing(4)
        top_layout.addLayout(header)
        top_layout.addWidget(self._make_controls())
        self._top_layout = top_layout
        top_layout.addWidget(self.stack, 1)
        splitter = QtWidgets.QSplitter(Qt.Vertical)
        splitter.addWidget(top)
        splitter.addWidget(self.info)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        self.splitter = splitter
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(splitter)

        self._restretch_timer = QtCore.QTimer(self, singleShot=True, interval=RESTRETCH_DELAY_MS)
        self._restretch_timer.timeout.connect(self._request)
        fit = QtGui.QAction("Fit image", self, shortcut=QtGui.QKeySequence("F"))
        fit.setShortcutContext(Qt.WidgetWithChildrenShortcut)
        fit.triggered.connect(self.fit)
        self.addAction(fit)

    def _make_controls(self) -> QtWidgets.QWidget:
        self.stretch_combo = QtWidgets.QComboBox()
        self.stretch_combo.addItems([AUTO, *STRETCHES])
        self.stretch_combo.setToolTip("How raw pixel values map to screen brightness (FITS, 16-bit, float "
                                      "images). auto: as stored for 8-bit, asinh for float, linear otherwise; "
                                      "as encoded (when the project preprocesses): what the encoder saw")
        self.stretch_combo.currentTextChanged.connect(lambda _: self._request())
        self.contrast = QtWidgets.QSlider(Qt.Horizontal)
        self.contrast.setRange(25, 400)
        self.contrast.setValue(100)
        self.contrast.setToolTip("Contrast of the stretch (100 % = default); double-click the label to reset")
        self.contrast.valueChanged.connect(self._contrast_moved)
        self.contrast_label = QtWidgets.QLabel("100 %")
        self.contrast_label.setMinimumWidth(44)
        fit_button = QtWidgets.QToolButton(text="Fit")
        fit_button.setToolTip("Fit the whole image in view (F, or double-click the image)")
        fit_button.clicked.connect(self.fit)
        self.layers_button = QtWidgets.QToolButton(text="Layers")
        self.layers_button.setToolTip("Show or hide overlays drawn on the image")
        self.layers_button.setPopupMode(QtWidgets.QToolButton.InstantPopup)
        self.layers_button.setMenu(QtWidgets.QMenu(self.layers_button))
        self.layers_button.hide()  # shown once a layer exists
        bar = QtWidgets.QWidget()
        row = QtWidgets.QHBoxLayout(bar)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QtWidgets.QLabel("Stretch"))
        row.addWidget(self.stretch_combo)
        row.addSpacing(8)
        row.addWidget(QtWidgets.QLabel("Contrast"))
        row.addWidget(self.contrast, 1)
        row.addWidget(self.contrast_label)
        row.addWidget(fit_button)
        row.addWidget(self.layers_button)
        return bar

    # -------------------------------------------------------------------- items
    def show_item(self, item_id: int, path, fields=(), label_text: str = "") -> None:
        """Show an item: its pixels (decoded off the GUI thread), ``fields`` ((name, value) rows)."""
        path = str(path)
        self.title.setText(f"<b>{Path(path).name}</b><br><span style='color:#8a93a6'>#{item_id} · "
                           f"{Path(path).parent}</span>")
        self.title.setToolTip(path)
        self.set_label_text(label_text)
        self.set_fields(fields)
        if item_id == self.item_id and path == self.path:
            return
        self.item_id, self.path = int(item_id), path
        self._request(fit=True)

    def clear(self) -> None:
        self._generation += 1
        self.item_id = self.path = None
        self.title.setText("No image selected")
        self.label_badge.clear()
        self.info.setRowCount(0)
        self.show_message("Select an image in the ranking, on the map or among the neighbours.")

    def set_label_text(self, text: str) -> None:
        self.label_badge.setText(text)
        self.label_badge.setVisible(bool(text))

    def set_fields(self, fields) -> None:
        fields = list(fields)
        self.info.setRowCount(len(fields))
        for r, (name, value) in enumerate(fields):
            for c, text in enumerate((str(name), str(value))):
                cell = QtWidgets.QTableWidgetItem(text)
                cell.setToolTip(text)
                self.info.setItem(r, c, cell)
        self.info.fit_name_column()

    def fields(self) -> dict[str, str]:
        return {self.info.item(r, 0).text(): self.info.item(r, 1).text() for r in range(self.info.rowCount())}

    # ---------------------------------------------------------------- rendering
    @property
    def stretch(self) -> str:
        return self.stretch_combo.currentText()

    def set_stretch(self, name: str) -> None:
        if self.stretch_combo.findText(name) < 0:
            choices = [self.stretch_combo.itemText(i) for i in range(self.stretch_combo.count())]
            raise ValueError(f"stretch must be one of {', '.join(choices)}; got {name!r}")
        self.stretch_combo.setCurrentText(name)

    def set_encoder_steps(self, steps: ScienceSteps) -> None:
        """The open project's science steps: offered as the stretch choice ``as encoded`` (the image as the
        encoder saw it before the resize: background, clip, crop, stretch), and their stretch preselected."""
        self._steps = steps
        self._render_cache.clear()
        at = self.stretch_combo.findText(AS_ENCODED)
        if at >= 0:
            if self.stretch == AS_ENCODED:
                self.stretch_combo.setCurrentText(AUTO)
            self.stretch_combo.removeItem(at)
        if steps:
            self.stretch_combo.addItem(AS_ENCODED)
            self.stretch_combo.setItemData(self.stretch_combo.count() - 1,
                                           f"The image as the encoder saw it before its resize: {steps}",
                                           Qt.ToolTipRole)
        if steps.stretch:
            self.set_stretch(steps.stretch)

    @property
    def contrast_value(self) -> float:
        return self.contrast.value() / 100.0

    def _contrast_moved(self, value: int) -> None:
        self.contrast_label.setText(f"{value} %")
        self._restretch_timer.start()

    def _request(self, fit: bool = False) -> None:
        """Show the current item with the current stretch: from cache, else from a worker."""
        if self.path is None:
            return
        self._generation += 1
        generation, path = self._generation, self.path
        key = (path, self.stretch, self.contrast.value())
        if key in self._render_cache:
            self._render_cache.move_to_end(key)
            self._display(generation, self.item_id, *self._render_cache[key], fit)
            return
        if self._task is not None:
            self._task.cancel()
        task = Task("decode", "Decoding", _decode, path, self._raw_cache.get(path), self.stretch,
                    self.contrast_value, self._steps, pool=self._pool)
        item_id = self.item_id
        task.finished.connect(lambda result: self._decoded(generation, item_id, key, result, fit))
        task.failed.connect(lambda message, _details: self._failed(generation, path, message))
        self._task = task.start()

    def _decoded(self, generation, item_id, key, result, fit) -> None:
        raw, rendered = result
        self._remember_raw(key[0], raw)
        self._render_cache[key] = rendered
        while len(self._render_cache) > RENDER_CACHE_ITEMS:
            self._render_cache.popitem(last=False)
        self._display(generation, item_id, *rendered, fit)

    def _remember_raw(self, path: str, raw: np.ndarray) -> None:
        self._raw_cache[path] = raw
        self._raw_cache.move_to_end(path)
        while len(self._raw_cache) > 1 and sum(a.nbytes for a in self._raw_cache.values()) > RAW_CACHE_BYTES:
            self._raw_cache.popitem(last=False)

    def _display(self, generation: int, item_id, rgb: np.ndarray, origin: tuple[int, int], fit: bool) -> None:
        if generation != self._generation:
            return  # a newer request superseded this one
        self._settled = generation
        self.image_item.setImage(rgb, autoLevels=False, levels=(0, 255))
        self.image_item.setRect(QtCore.QRectF(origin[1], origin[0], rgb.shape[1], rgb.shape[0]))
        self.stack.setCurrentWidget(self.graphics)
        if fit:
            self.fit()
        self.image_shown.emit(item_id)

    def _failed(self, generation: int, path: str, message: str) -> None:
        if generation == self._generation:
            self._settled = generation
            self.show_message(f"Cannot show {Path(path).name}:\n{message}")

    def show_message(self, text: str) -> None:
        self.message.setText(text)
        self.stack.setCurrentWidget(self.message)

    def fit(self) -> None:
        if self.image_item.image is not None:
            self.view_box.autoRange(padding=0.02)

    def is_settled(self) -> bool:
        """Nothing in flight: the current item's pixels are drawn, or the message why they cannot be."""
        return self.path is None or self._settled == self._generation

    def image(self) -> np.ndarray | None:
        """The 8-bit RGB pixels on screen."""
        return self.image_item.image

    # ------------------------------------------------------------------- layers
    def add_layer(self, name: str, item: QtWidgets.QGraphicsItem, visible: bool = True) -> None:
        """Draw ``item`` over the image (in image pixel coordinates); listed in the Layers menu."""
        if name in self._layers:
            self.view_box.removeItem(self._layers[name])
            self.layers_button.menu().removeAction(self._layer_actions.pop(name))
        item.setZValue(10 + len(self._layers))
        self.view_box.addItem(item, ignoreBounds=True)
        self._layers[name] = item
        action = self.layers_button.menu().addAction(name)
        action.setCheckable(True)
        action.toggled.connect(lambda on, n=name: self.set_layer_visible(n, on))
        self._layer_actions[name] = action
        self.layers_button.show()
        self.set_layer_visible(name, visible)

    def set_layer_visible(self, name: str, visible: bool) -> None:
        if name not in self._layers:
            raise KeyError(f"no layer {name!r}; layers: {', '.join(self._layers) or 'none'}")
        self._layers[name].setVisible(visible)
        action = self._layer_actions[name]
        if action.isChecked() != visible:
            action.setChecked(visible)

    def layer_action(self, name: str) -> QtGui.QAction:
        """The Layers menu's check action of layer ``name``."""
        return self._layer_actions[name]

    def add_control_strip(self, widget: QtWidgets.QWidget) -> None:
        """Put ``widget`` (a layer's controls) under the stretch and contrast controls, above the image."""
        self._top_layout.insertWidget(self._top_layout.indexOf(self.stack), widget)

    def layer_names(self) -> list[str]:
        return list(self._layers)

    def layer(self, name: str) -> QtWidgets.QGraphicsItem:
        return self._layers[name]

