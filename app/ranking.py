"""The ranking grid: every item as a thumbnail, most anomalous first, with filters.

Built for a million items.  Filters are whole-column numpy/pyarrow operations
(a text search over 1M paths takes ~0.15 s), the model works out a cell's
content only when Qt paints it, and thumbnails arrive lazily from a
:class:`~oddscope.app.thumbs.ThumbnailCache`.  The grid is a ``QTableView``
over the visible order wrapped into rows of cells: ``QListView`` in icon mode
lays out every item itself and calls the (Python) model's ``rowCount`` about
four times per item - 12 s at 1M items - while a table view only ever looks
at the rows on screen.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from PySide6.QtCore import QModelIndex, QPoint, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPainter, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from oddscope.app import model as project_model
from oddscope.app.ranking_cells import DEFAULT_THUMB, CellDelegate, RankingModel
from oddscope.app.ranking_table import LABEL_CHOICES, Filters, RankingTable
from oddscope.app.thumbs import ThumbnailCache
from oddscope.app.worker import Lane, Task

TEXT_DEBOUNCE_MS = 200  # typing "galaxy" filters once, not six times


def _filtered(table: RankingTable, filters: Filters, progress=None) -> np.ndarray:
    """Task function (worker thread): the positions ``filters`` keep."""
    return table.filter(filters)


class RankingGrid(QTableView):
    """The cell grid: as many columns as fit, arrows move along the visible order."""

    columns_fit = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        for header in (self.horizontalHeader(), self.verticalHeader()):
            header.hide()
            header.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
            header.setMinimumSectionSize(1)
        self.setShowGrid(False)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectItems)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        # Always on: a scroll bar appearing would change the width, the columns, the rows... and loop.
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOn)
        self.setTabKeyNavigation(False)
        self.setCornerButtonEnabled(False)
        self.setWordWrap(False)
        self.setMouseTracking(True)
        self.viewport().setAttribute(Qt.WidgetAttribute.WA_Hover)
        self.setFrameShape(QTableView.Shape.NoFrame)
        # The style would fill the whole selected cell with the highlight colour; hide that fill,
        # the delegate draws a rounded card in the application's highlight colour instead.
        palette = self.palette()
        palette.setColor(QPalette.ColorRole.Highlight, QColor(Qt.GlobalColor.transparent))
        self.setPalette(palette)
        self._cell = QSize(DEFAULT_THUMB + 16, DEFAULT_THUMB + 32)
        self.empty_text = "No items"

    def set_cell_size(self, size: QSize) -> None:
        self._cell = size
        self.verticalHeader().setDefaultSectionSize(size.height())
        self.verticalScrollBar().setSingleStep(max(8, size.height() // 4))
        self.fit_columns()

    def fit_columns(self) -> None:
        width = self.viewport().width()
        columns = max(1, width // self._cell.width())
        self.horizontalHeader().setDefaultSectionSize(max(self._cell.width(), width // columns))
        self.columns_fit.emit(columns)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.fit_columns()

    def moveCursor(self, action, modifiers) -> QModelIndex:
        """Move along the visible order, so Right at the end of a row continues on the next."""
        model: RankingModel = self.model()
        if model is None or model.count == 0:
            return QModelIndex()
        current = self.currentIndex()
        if model.item_at(current) is None:
            return model.index_at(0)
        flat, columns = model.flat(current), model.columns
        page = columns * max(1, self.viewport().height() // max(1, self.rowHeight(0)))
        move = QAbstractItemView.CursorAction
        steps = {move.MoveRight: 1, move.MoveNext: 1, move.MoveLeft: -1, move.MovePrevious: -1,
                 move.MoveDown: columns, move.MoveUp: -columns, move.MovePageDown: page, move.MovePageUp: -page,
                 move.MoveHome: -flat, move.MoveEnd: model.count}
        if action == move.MoveUp and flat < columns:
            return current  # already on the first row
        return model.index_at(int(np.clip(flat + steps.get(action, 0), 0, model.count - 1)))

    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        model = self.model()
        if model is not None and model.count == 0:
            painter = QPainter(self.viewport())
            faded = self.palette().color(QPalette.ColorRole.Text)
            faded.setAlpha(160)
            painter.setPen(faded)
            painter.drawText(self.viewport().rect(), Qt.AlignmentFlag.AlignCenter, self.empty_text)


class RankingView(QWidget):
    """Filter bar over the thumbnail grid of the active ranking.

    Programmatic moves (:meth:`set_current_item`, :meth:`next_item`,
    :meth:`previous_item`) do not emit :attr:`current_changed` - the caller
    knows the new item - clicks and keys do.
    """

    current_changed = Signal(int)
    activated = Signal(int)

    def __init__(self, thumbnails: ThumbnailCache | None = None, parent=None):
        super().__init__(parent)
        self.model = RankingModel(self)
        self.delegate = CellDelegate(parent=self)
        self.grid = RankingGrid(self)
        self.grid.setModel(self.model)
        self.grid.setItemDelegate(self.delegate)
        self.grid.columns_fit.connect(self._set_columns)
        self.grid.selectionModel().currentChanged.connect(self._on_current_index)
        self.grid.activated.connect(self._on_activated)
        self._current: int | None = None
        self._lane: Lane | None = None  # where large tables are filtered (None: always at once)
        self._quiet = False
        self._selection: np.ndarray | None = None
        self._build_filter_bar()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addLayout(self._bar)
        layout.addWidget(self.grid, 1)
        self.set_thumbnail_cache(thumbnails)
        self._show_count()

    # ------------------------------------------------------------ filter bar
    def _build_filter_bar(self) -> None:
        self.search = QLineEdit()
        self.search.setPlaceholderText("Filter by path or metadata\u2026")
        self.search.setClearButtonEnabled(True)
        self.search.setToolTip("Show items whose path or a metadata value contains this text (case-insensitive)")
        self._text_timer = QTimer(self, singleShot=True, interval=TEXT_DEBOUNCE_MS)
        self._text_timer.timeout.connect(self._apply_filters)
        self.search.textChanged.connect(self._text_timer.start)
        self.search.returnPressed.connect(self._apply_filters)

        self.tag_combo = QComboBox()
        self.tag_combo.setToolTip("Show only items with this tag")
        self.label_combo = QComboBox()
        self.label_combo.setToolTip("Show items by their label: unlabelled, labelled, or a minimum label score")
        self.label_combo.addItems([text for text, _ in LABEL_CHOICES])
        self._tag_values: list[str | None] = [None]  # per combo entry (kept in Python, see RankingModel.data)
        self._cluster_values: list[int | None] = [None]
        self.cluster_combo = QComboBox()
        self.cluster_combo.setToolTip("Show only one cluster of the map (k-means)")
        for combo in (self.tag_combo, self.label_combo, self.cluster_combo):
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(7)  # narrow docks still fit; the popup shows whole entries
            combo.setMaximumWidth(200)
            combo.currentIndexChanged.connect(self._apply_filters)

        self.score_min, self.score_max = QDoubleSpinBox(), QDoubleSpinBox()
        for spin, end in ((self.score_min, "lowest"), (self.score_max, "highest")):
            spin.setKeyboardTracking(False)  # filter when the value is entered, not per keystroke
            spin.setToolTip(f"The {end} anomaly score shown (press Enter to apply)")
            spin.setMinimumWidth(72)
            spin.setMaximumWidth(110)
            spin.valueChanged.connect(self._apply_filters)
        self.score_caption = QLabel("Score")

        self.selection_toggle = QToolButton()
        self.selection_toggle.setCheckable(True)
        self.selection_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.selection_toggle.setToolTip("Show only the items selected on the map (follows the map selection)")
        self.selection_toggle.toggled.connect(self._apply_filters)
        self.reset_button = QToolButton(text="Reset")
        self.reset_button.setToolTip("Clear every filter")
        self.reset_button.clicked.connect(self.reset_filters)
        self.count_label = QLabel()
        self.count_label.setToolTip("Items shown / items in the ranking")
        self.count_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

        top = QHBoxLayout()
        top.addWidget(self.search, 1)
        top.addWidget(self.count_label)
        top.addWidget(self.selection_toggle)
        top.addWidget(self.reset_button)
        bottom = QHBoxLayout()
        for widget in (self.tag_combo, self.label_combo, self.cluster_combo):
            bottom.addWidget(widget, 1)
        bottom.addSpacing(6)
        bottom.addWidget(self.score_caption)
        bottom.addWidget(self.score_min)
        bottom.addWidget(QLabel("\u2013"))
        bottom.addWidget(self.score_max)
        bottom.addStretch(0)
        self._bar = QVBoxLayout()
        self._bar.setContentsMargins(6, 6, 6, 0)
        self._bar.setSpacing(4)
        self._bar.addLayout(top)
        self._bar.addLayout(bottom)
        self._show_selection_count()

    def _fill_choices(self) -> None:
        """Tag, cluster and score-range choices for the current table (keeping what is chosen if it still exists)."""
        table = self.model.table
        self._fill_tags()
        counts = table.cluster_counts()
        self._cluster_values = self._refill(self.cluster_combo, self._cluster_values, [None] + [c for c, _ in counts],
                                            ["All clusters"] + [f"{'No cluster' if c < 0 else f'Cluster {c}'} ({n:,})"
                                                                for c, n in counts])

        lo, hi = table.score_range or (0.0, 0.0)
        span = hi - lo
        decimals = int(np.clip(3 - np.floor(np.log10(span)), 0, 6)) if span > 0 else 3
        step = 10.0 ** -decimals
        lo, hi = np.floor(lo / step) * step, np.ceil(hi / step) * step  # shown values cover the data
        for spin, value in ((self.score_min, lo), (self.score_max, hi)):
            spin.blockSignals(True)
            spin.setDecimals(decimals)
            spin.setRange(lo, hi)
            spin.setSingleStep(max(step, round(span / 50, decimals)))
            spin.setValue(value)
            spin.setEnabled(table.score_range is not None)
            spin.blockSignals(False)

    def _fill_tags(self) -> None:
        tags = self.model.table.all_tags()
        self._tag_values = self._refill(self.tag_combo, self._tag_values, [None] + tags, ["Any tag"] + tags)

    @staticmethod
    def _refill(combo: QComboBox, old_values: list, values: list, texts: list[str]) -> list:
        """Replace a combo's entries, keeping the chosen value if it is still offered."""
        chosen = old_values[combo.currentIndex()] if combo.currentIndex() >= 0 else None
        combo.blockSignals(True)
        combo.clear()
        combo.addItems(texts)
        combo.setCurrentIndex(values.index(chosen) if chosen in values else 0)
        combo.setEnabled(len(values) > 1)
        combo.blockSignals(False)
        return values

    def filters(self) -> Filters:
        """The filters the bar shows now."""
        lo, hi = self.score_min.value(), self.score_max.value()
        return Filters(
            text=self.search.text(), tag=self._tag_values[self.tag_combo.currentIndex()],
            label=LABEL_CHOICES[self.label_combo.currentIndex()][1],
            cluster=self._cluster_values[self.cluster_combo.currentIndex()],
            score_min=lo if lo > self.score_min.minimum() else None,
            score_max=hi if hi < self.score_max.maximum() else None,
            selection=self._selection if self.selection_toggle.isChecked() else None)

    def reset_filters(self) -> None:
        widgets = (self.search, self.tag_combo, self.label_combo, self.cluster_combo, self.score_min,
                   self.score_max, self.selection_toggle)
        for widget in widgets:
            widget.blockSignals(True)
        self.search.clear()
        for combo in (self.tag_combo, self.label_combo, self.cluster_combo):
            combo.setCurrentIndex(0)
        self.score_min.setValue(self.score_min.minimum())
        self.score_max.setValue(self.score_max.maximum())
        self.selection_toggle.setChecked(False)
        for widget in widgets:
            widget.blockSignals(False)
        self._apply_filters()

    def use_lane(self, lane: Lane) -> None:
        """Filter tables of :data:`~oddscope.app.model.ASYNC_ITEMS` items and more as tasks in ``lane``
        (latest wins: typing on supersedes the search for the text before)."""
        self._lane = lane

    @property
    def filtering(self) -> bool:
        """Filters are being applied in the background (the grid shows the previous result meanwhile)."""
        return self._lane is not None and bool(self._lane.tasks())

    def _apply_filters(self) -> None:
        self._text_timer.stop()
        table, filters = self.model.table, self.filters()
        if self._lane is None or len(table) < project_model.ASYNC_ITEMS or not filters.restricts():
            self._show_filtered(table, table.filter(filters))
            return
        task = Task("filter", "Filtering", _filtered, table, filters)
        task.finished.connect(lambda order: self._show_filtered(table, order))
        self._lane.submit(task)

    def _show_filtered(self, table: RankingTable, order: np.ndarray) -> None:
        if table is not self.model.table:
            return  # filtered a table that has been replaced meanwhile
        current = self._current
        self.model.set_order(order)
        self._restore_current(current)
        self._show_count()

    def _show_count(self) -> None:
        shown, total = self.model.count, len(self.model.table)
        self.count_label.setText(f"{total:,} items" if shown == total else f"{shown:,} of {total:,}")
        self.grid.empty_text = "No items match the filters" if total else "No items"

    def _show_selection_count(self) -> None:
        n = None if self._selection is None else len(self._selection)
        self.selection_toggle.setText("Map selection" + ("" if n is None else f" ({n:,})"))

    # ------------------------------------------------------------ public API
    def set_thumbnail_cache(self, cache: ThumbnailCache | None) -> None:
        self.model.set_thumbnail_cache(cache)
        self.delegate.thumb_size = cache.size if cache is not None else DEFAULT_THUMB
        self.grid.set_cell_size(self.delegate.cell_size(self.grid.font()))

    def set_table(self, table: pd.DataFrame | RankingTable) -> None:
        """Show a table like ``project_table`` (index item_id, in ranking order), or its :class:`RankingTable`
        already built (off the GUI thread); filters that still apply stay (applied in the background at scale)."""
        current = self._current
        table = table if isinstance(table, RankingTable) else RankingTable(table)
        self.model.set_table(table, table.every_position)  # every item until the filters are applied
        self._fill_choices()
        self._restore_current(current)
        self._apply_filters()

    def update_labels(self, labels: pd.DataFrame) -> None:
        """Refresh label badges in place (scroll position and current item stay).

        ``labels``: rows of a ``project_table`` (``label_score``, ``tags``) or of
        ``Project.labels()`` (``score``, ``tags`` lists), indexed by item id.
        Filters are not re-run, so an item just labelled does not vanish from an
        "Unlabelled" view under the user's cursor.
        """
        self.model.refresh_positions(self.model.table.update_labels(labels))
        if self.model.table.all_tags() != self._tag_values[1:]:
            self._fill_tags()

    def set_selection_filter(self, item_ids) -> None:
        """The map selection (item ids, or None for none); shown alone while "Map selection" is on."""
        self._selection = None if item_ids is None else np.asarray(item_ids, np.int64).ravel()
        self._show_selection_count()
        if self.selection_toggle.isChecked():
            self._apply_filters()

    def visible_ids(self) -> np.ndarray:
        """Item ids shown, in grid order."""
        return self.model.visible_ids()

    def current_item(self) -> int | None:
        return self._current

    def set_current_item(self, item_id: int) -> bool:
        """Make ``item_id`` current and scroll to it; False if it is filtered out (current unchanged)."""
        index = self.model.index_of_item(item_id)
        if not index.isValid():
            return False
        self._set_current_index(index)
        return True

    def next_item(self) -> int | None:
        """Move to the next visible item (the first if none is current); returns its id."""
        return self._step(1)

    def previous_item(self) -> int | None:
        return self._step(-1)

    # ------------------------------------------------------------ internals
    def _step(self, delta: int) -> int | None:
        model = self.model
        if model.count == 0:
            return None
        index = model.index_of_item(self._current) if self._current is not None else QModelIndex()
        flat = 0 if not index.isValid() else int(np.clip(model.flat(index) + delta, 0, model.count - 1))
        self._set_current_index(model.index_at(flat))
        return self._current

    def _set_current_index(self, index: QModelIndex) -> None:
        self._quiet = True
        try:
            self.grid.selectionModel().setCurrentIndex(
                index, self.grid.selectionModel().SelectionFlag.ClearAndSelect)
        finally:
            self._quiet = False
        self._current = self.model.item_at(index)
        if not self.grid.viewport().rect().contains(self.grid.visualRect(index)):
            self.grid.scrollTo(index, QAbstractItemView.ScrollHint.PositionAtCenter)

    def _restore_current(self, item_id: int | None) -> None:
        index = self.model.index_of_item(item_id) if item_id is not None else QModelIndex()
        self._current = None
        if index.isValid():
            self._set_current_index(index)

    def _on_current_index(self, index: QModelIndex, _previous=None) -> None:
        item_id = self.model.item_at(index)
        if item_id is None or item_id == self._current:
            return
        selection = self.grid.selectionModel()
        if not selection.isSelected(index):  # Qt makes the first item current on focus-in, unselected
            selection.select(index, selection.SelectionFlag.ClearAndSelect)
        self._current = item_id
        if not self._quiet:
            self.current_changed.emit(item_id)

    def _on_activated(self, index: QModelIndex) -> None:
        item_id = self.model.item_at(index)
        if item_id is not None:
            self.activated.emit(item_id)

    def _set_columns(self, columns: int) -> None:
        if columns == self.model.columns:
            return
        top = self.model.flat(self.grid.indexAt(QPoint(1, 1)))  # keep the first visible item in view
        current = self._current
        self.model.set_columns(columns)
        self._restore_current(current)
        anchor = self.model.index_at(max(0, top))
        if anchor.isValid():
            self.grid.scrollTo(anchor, QAbstractItemView.ScrollHint.PositionAtTop)
