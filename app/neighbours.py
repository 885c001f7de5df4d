"""The strip of items most similar to the current one: walk the collection by likeness.

Lookups are tasks in a latest-wins ``neighbours`` lane of one thread: the first
one loads the saved hnswlib index or builds one (a second or more), and a single thread keeps two
first lookups from building it twice.  Only the newest request matters: a
queued one that is no longer the newest never runs, and a result for an item
that is no longer shown is dropped.  A large project's index is not built here: a lookup that needs one
answers :class:`~oddscope.app.jobs.IndexNeeded`, the strip says the index is being built and asks for it
(:attr:`NeighboursPanel.index_needed`), and the window builds it in a child process, then asks again
(:meth:`NeighboursPanel.requery`).  Answers from a reduced index say so ("approximate: PCA to 256 dimensions").
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from PySide6.QtCore import QAbstractListModel, QModelIndex, QObject, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QGuiApplication, QPainter, QPalette, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListView,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QStyle,
    QStyledItemDelegate,
    QVBoxLayout,
    QWidget,
)

from oddscope.app.jobs import IndexNeeded
from oddscope.app.ranking_table import format_score
from oddscope.app.thumbs import ThumbnailCache, ThumbnailUser, paint_thumbnail
from oddscope.app.worker import Lane, Task
from oddscope.core.models import registry

METRICS = tuple((entry.label, name) for name, entry in registry.METRICS.items())  # (shown, value)
DEFAULT_K = 12
STRIP_THUMB = 96
BUILDING = "Building the similar-items index\u2026"
STATUS_TIP = "What the strip shows"


class NeighboursModel(QAbstractListModel, ThumbnailUser):
    """The neighbours shown: item ids and distances, nearest first."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.ids = np.empty(0, np.int64)
        self.distances = np.empty(0)
        self.paths: pd.Series | None = None

    def set_results(self, ids, distances) -> None:
        self.beginResetModel()
        self.ids = np.asarray(ids, np.int64)
        self.distances = np.asarray(distances, np.float64)
        self.endResetModel()

    def item_at(self, index: QModelIndex) -> int | None:
        return int(self.ids[index.row()]) if index.isValid() and index.row() < len(self.ids) else None

    def path_of(self, item_id: int) -> str:
        if self.paths is None:
            return ""
        path = self.paths.get(item_id)
        return "" if path is None or (isinstance(path, float) and np.isnan(path)) else str(path)

    def thumbnail_at(self, index: QModelIndex):
        item_id = self.item_at(index)
        if item_id is None or self._thumbnails is None or not self.path_of(item_id):
            return None
        return self._thumbnails.get(item_id, self.path_of(item_id))

    def _on_thumbnail(self, item_id: int) -> None:
        rows = np.flatnonzero(self.ids == item_id)
        if len(rows):
            index = self.index(int(rows[0]))
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.ids)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        item_id = self.item_at(index)
        if item_id is None:
            return None
        distance = format_score(self.distances[index.row()])
        if role == Qt.ItemDataRole.DisplayRole:
            return distance
        if role == Qt.ItemDataRole.ToolTipRole:
            return (f"<b>Neighbour {index.row() + 1}</b> \u00b7 distance {distance}<br>"
                    f"<span style='color:#8a93a6'>item {item_id} \u00b7 {self.path_of(item_id)}</span><br>"
                    "Click to walk to it")
        if role == Qt.ItemDataRole.DecorationRole:
            return self.thumbnail_at(index)
        return None


class NeighbourDelegate(QStyledItemDelegate):
    """A neighbour: its thumbnail with its place (1 = nearest), the distance under it."""

    PAD = 5

    def __init__(self, thumb_size: int = STRIP_THUMB, parent=None):
        super().__init__(parent)
        self.thumb_size = thumb_size

    def cell_size(self, font: QFont) -> QSize:
        return QSize(self.thumb_size + 2 * self.PAD, self.thumb_size + 2 * self.PAD + QFontMetrics(font).height())

    def sizeHint(self, option, index) -> QSize:
        return self.cell_size(option.font)

    def paint(self, painter: QPainter, option, index: QModelIndex) -> None:
        model: NeighboursModel = index.model()
        if model.item_at(index) is None:
            return
        palette = QGuiApplication.palette()
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        card = QRectF(option.rect).adjusted(1.5, 1.5, -1.5, -1.5)
        if option.state & QStyle.StateFlag.State_MouseOver:
            painter.setPen(QPen(palette.color(QPalette.ColorRole.Highlight), 1.5))
            painter.setBrush(palette.color(QPalette.ColorRole.AlternateBase))
            painter.drawRoundedRect(card, 5, 5)
        s = self.thumb_size
        thumb = QRect(option.rect.center().x() - s // 2, option.rect.top() + self.PAD, s, s)
        paint_thumbnail(painter, thumb, model.thumbnail_at(index))
        painter.setPen(Qt.PenStyle.NoPen)
        small = QFont(option.font)
        small.setPointSizeF(max(6.5, option.font.pointSizeF() * 0.8))
        small.setBold(True)
        painter.setFont(small)
        place = str(index.row() + 1)
        pill = QRectF(thumb.left() + 3, thumb.top() + 3, QFontMetrics(small).horizontalAdvance(place) + 8,
                      QFontMetrics(small).height())
        painter.setBrush(QColor(0, 0, 0, 160))
        painter.drawRoundedRect(pill, 4, 4)
        painter.setPen(QColor("white"))
        painter.drawText(pill, Qt.AlignmentFlag.AlignCenter, place)
        painter.setFont(option.font)
        painter.setPen(palette.color(QPalette.ColorRole.Text))
        line = QRect(thumb.left(), thumb.bottom() + 1, thumb.width(), QFontMetrics(option.font).height() + 2)
        painter.drawText(line, Qt.AlignmentFlag.AlignCenter, format_score(model.distances[index.row()]))
        painter.restore()


class _Channel(QObject):
    """Carries the query function's progress from its thread to the panel (a queued connection).

    Not parented to the panel: a running lookup keeps it alive past the panel,
    and its queued report then simply finds no receiver.
    """

    working = Signal(str, int, int)  # stage, done, total of slow first-time work (building the index)


def _look_up(fn, item_id: int, k: int, metric: str, progress=None):
    """Lookup task (worker thread): ``fn``'s table of neighbours."""
    return fn(item_id, k, metric)


class NeighboursPanel(QWidget):
    """The k nearest neighbours of the current item, as a clickable strip."""

    walk_to = Signal(int)
    more_like_this = Signal(object)  # np.ndarray of item ids: the query item first, then its neighbours
    index_needed = Signal(str)  # a metric whose index must be built elsewhere before the strip can fill

    def __init__(self, thumbnails: ThumbnailCache | None = None, parent=None, lane: Lane | None = None):
        super().__init__(parent)
        self._query_fn = None
        self._item: int | None = None
        self._lookup: Task | None = None  # the newest lookup (cancelled once superseded)
        self._channel = _Channel()
        self._channel.working.connect(self._on_working)
        self._lane = lane or Lane("neighbours", parent=self)
        self.model = NeighboursModel(self)
        self.delegate = NeighbourDelegate(parent=self)
        self._build()
        self.set_thumbnail_cache(thumbnails)
        self._show_message("Select an item to see the items most like it.")

    def _build(self) -> None:
        self.title = QLabel("<b>Similar items</b>")
        self.metric_combo = QComboBox()
        self.metric_combo.addItems([name for name, _ in METRICS])
        self.metric_combo.setToolTip("How likeness is measured between feature vectors:\n"
                                     "cosine (angle, the usual choice), L2 (Euclidean) or L1 (Manhattan)")
        self.metric_combo.currentIndexChanged.connect(self.requery)
        self.k_spin = QSpinBox()
        self.k_spin.setRange(1, 200)
        self.k_spin.setValue(DEFAULT_K)
        self.k_spin.setPrefix("k = ")
        self.k_spin.setKeyboardTracking(False)
        self.k_spin.setToolTip("How many neighbours to show")
        self.k_spin.valueChanged.connect(self.requery)
        self.more_button = QPushButton("More like this")
        self.more_button.setToolTip("Select this item and its neighbours on the map")
        self.more_button.setEnabled(False)
        self.more_button.clicked.connect(self._emit_more_like_this)
        self.status = QLabel()
        self.status.setToolTip(STATUS_TIP)
        dim = self.status.palette()
        faded = dim.color(QPalette.ColorRole.WindowText)
        faded.setAlpha(160)  # secondary text, readable on dark and light themes
        dim.setColor(QPalette.ColorRole.WindowText, faded)
        self.status.setPalette(dim)

        self.strip = QListView()
        self.strip.setModel(self.model)
        self.strip.setItemDelegate(self.delegate)
        self.strip.setFlow(QListView.Flow.LeftToRight)
        self.strip.setWrapping(False)
        self.strip.setUniformItemSizes(True)
        self.strip.setSpacing(2)
        self.strip.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.strip.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.strip.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.strip.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.strip.setMouseTracking(True)
        self.strip.viewport().setAttribute(Qt.WidgetAttribute.WA_Hover)
        self.strip.setFrameShape(QListView.Shape.NoFrame)
        self.strip.setToolTip("Nearest first; click one to walk to it")
        self.strip.clicked.connect(self._on_clicked)
        self.message = QLabel(alignment=Qt.AlignmentFlag.AlignCenter, wordWrap=True)
        self.message.setPalette(dim)
        self.pages = QStackedWidget()
        self.pages.addWidget(self.message)
        self.pages.addWidget(self.strip)

        bar = QHBoxLayout()
        bar.addWidget(self.title)
        bar.addWidget(self.status, 1)
        bar.addWidget(self.metric_combo)
        bar.addWidget(self.k_spin)
        bar.addWidget(self.more_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(4)
        layout.addLayout(bar)
        layout.addWidget(self.pages, 1)

    # ------------------------------------------------------------ public API
    def set_query_function(self, fn) -> None:
        """``fn(item_id, k, metric) -> DataFrame(item_id, distance)``; called on a worker thread."""
        self._query_fn = fn
        self.requery()

    def set_thumbnail_cache(self, cache: ThumbnailCache | None) -> None:
        self.model.set_thumbnail_cache(cache)
        self.delegate.thumb_size = min(STRIP_THUMB, cache.size) if cache is not None else STRIP_THUMB
        height = self.delegate.cell_size(self.strip.font()).height()
        self.pages.setFixedHeight(height + self.strip.horizontalScrollBar().sizeHint().height() + 8)

    def set_paths(self, paths: pd.Series) -> None:
        """Item id -> image path, for the thumbnails."""
        self.model.paths = paths
        self.strip.viewport().update()

    def show_item(self, item_id: int | None) -> None:
        """Look up the neighbours of ``item_id`` (None clears the strip)."""
        self._item = None if item_id is None else int(item_id)
        self.requery()

    def item(self) -> int | None:
        """The item whose neighbours are shown (or being looked up)."""
        return self._item

    def current_metric(self) -> str:
        return METRICS[self.metric_combo.currentIndex()][1]

    def neighbour_ids(self) -> np.ndarray:
        return self.model.ids.copy()

    # ------------------------------------------------------------ internals
    def requery(self) -> None:
        """Start a lookup for the current settings (again once an index was built elsewhere); the old strip stays
        up until the answer (no flicker)."""
        if self._lookup is not None:
            self._lookup.cancel()  # its answer is no longer wanted (the lane would cancel it too)
        self.more_button.setEnabled(False)
        if self._item is None or self._query_fn is None:
            self.model.set_results([], [])
            self.status.setText("")
            self._show_message("Select an item to see the items most like it." if self._item is None
                               else "Similarity search is not available for this project.")
            return
        self.status.setText(f"searching neighbours of item {self._item}\u2026")
        if not len(self.model.ids):
            self._show_message("Searching for similar items\u2026")
        self._lookup = Task("neighbours", "Finding similar items", _look_up, self._query_fn, self._item,
                            self.k_spin.value(), self.current_metric())
        self._lookup.finished.connect(self._on_found)
        self._lookup.failed.connect(self._on_failed)
        self._lane.submit(self._lookup)

    def report_progress(self, stage: str, done: int, total: int) -> None:
        """Thread-safe progress callback for the query function's slow first-time work."""
        try:
            self._channel.working.emit(stage, int(done), int(total))
        except RuntimeError:  # shutting down: the channel is gone
            pass

    def _on_working(self, stage: str, done: int, total: int) -> None:
        if total > 0 and done < total and self._item is not None:
            self.status.setText(f"{stage.lower()}: {100 * done // total}% (first search with this metric only)")

    def _on_failed(self, error: str, _details: str) -> None:
        """The newest lookup failed (an older one reports ``cancelled`` instead: nothing to show)."""
        self.model.set_results([], [])
        self.status.setText("")
        self._show_message(f"No neighbours for item {self._item}: {error}")

    def index_build_stopped(self, outcome: str) -> None:
        """The index build asked for by :attr:`index_needed` was cancelled or failed: say so (the next lookup
        asks again)."""
        if self._item is not None and self._query_fn is not None:
            self._show_message(f"The similar-items index was not built ({outcome}); "
                               "select an item to try again.")

    def _on_found(self, result) -> None:
        """The newest lookup's answer (a superseded lookup never delivers one)."""
        if isinstance(result, IndexNeeded):
            self.model.set_results([], [])
            self.status.setText("")
            self._show_message(BUILDING)
            self.index_needed.emit(result.metric)
            return
        try:
            ids = result["item_id"].to_numpy(np.int64)
            distances = result["distance"].to_numpy(np.float64)
        except (KeyError, TypeError, ValueError) as err:
            self.model.set_results([], [])
            self.status.setText("")
            self._show_message(f"The similarity search returned an unexpected table ({err})")
            return
        approximate = result.attrs.get("approximate")
        self.model.set_results(ids, distances)
        self.status.setText(f"{len(ids)} nearest to item {self._item} \u00b7 {self.metric_combo.currentText()}"
                            + (f" \u00b7 approximate: {approximate}" if approximate else ""))
        self.status.setToolTip(STATUS_TIP + (f"\nApproximate neighbours: at this scale the index holds the features "
                                             f"reduced by {approximate}" if approximate else ""))
        self.more_button.setEnabled(True)
        if len(ids):
            self.pages.setCurrentWidget(self.strip)
            self.strip.scrollToTop()
        else:
            self._show_message("No other analysed items to compare with.")

    def _show_message(self, text: str) -> None:
        self.message.setText(text)
        self.pages.setCurrentWidget(self.message)

    def _on_clicked(self, index: QModelIndex) -> None:
        item_id = self.model.item_at(index)
        if item_id is not None:
            self.walk_to.emit(item_id)

    def _emit_more_like_this(self) -> None:
        if self._item is not None:
            self.more_like_this.emit(np.concatenate([[self._item], self.model.ids]).astype(np.int64))

