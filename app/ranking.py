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

import itertools
import re
import zlib
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPoint, QRect, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QGuiApplication, QPainter, QPalette, QPen
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QDoubleSpinBox, QHBoxLayout, QHeaderView, QLabel,
                               QLineEdit, QStyle, QStyledItemDelegate, QTableView, QToolButton, QVBoxLayout,
                               QWidget)

from oddscope.core.project.table import is_metadata

from oddscope.app.thumbs import ThumbnailCache, ThumbnailUser, paint_thumbnail

# Label score 0 (normal) to 5 (most interesting): cool to hot.
SCORE_COLOURS = ("#6b7785", "#3d8bd4", "#26a69a", "#d4a82a", "#ee7d2b", "#e0483e")
TEXT_DEBOUNCE_MS = 200  # typing "galaxy" filters once, not six times
DEFAULT_THUMB = 128
LABEL_CHOICES = [("Any label", None), ("Unlabelled", "unlabelled"), ("Labelled", "labelled")] + [
    (f"Score \u2265 {n}", n) for n in range(1, 6)]


@dataclass
class Filters:
    """What the filter bar asks for; ``None`` (or empty text) means "no restriction"."""

    text: str = ""
    tag: str | None = None
    label: str | int | None = None  # "unlabelled", "labelled" or a minimum label score
    cluster: int | None = None
    score_min: float | None = None
    score_max: float | None = None
    selection: np.ndarray | None = None  # item ids


class Cell(NamedTuple):
    """What one grid cell shows."""

    item_id: int
    rank: int
    score: float
    label_score: float
    tags: tuple[str, ...]
    path: str


class RankingTable:
    """The columns the grid needs, as arrays, with vectorised filtering (no Qt here).

    Rows keep the table's order (the active ranking); a *position* is a row number.
    """

    def __init__(self, df: pd.DataFrame):
        if not pd.api.types.is_integer_dtype(df.index) or (len(df) and df.index.min() < 0):
            raise ValueError("the ranking table must be indexed by item ids (integers >= 0)")
        if "rank" in df and len(df):
            key = df["rank"].to_numpy(np.int64)
            key = np.where(key == 0, np.iinfo(np.int64).max, key)  # unranked last, as project_table does
            if np.any(np.diff(key) < 0):
                df = df.iloc[np.argsort(key, kind="stable")]
        n = len(df)
        self.ids = df.index.to_numpy(np.int64)
        self.rank = df["rank"].to_numpy(np.int64) if "rank" in df else np.arange(1, n + 1)
        self.score = _floats(df, "anomaly_score")
        self.label_score = _floats(df, "label_score")
        self.cluster = pd.to_numeric(df["cluster"]).fillna(-1).to_numpy(np.int64) if "cluster" in df else None
        self.paths = df["path"].astype("str").fillna("").array if "path" in df else None
        self.tags: dict[int, tuple[str, ...]] = {}
        self.has_tags = np.zeros(n, bool)
        if "tags" in df and n:
            tags = df["tags"].astype("str").fillna("")
            tagged = np.flatnonzero(tags.str.len().to_numpy() > 0)
            for pos, text in zip(tagged.tolist(), tags.iloc[tagged].tolist()):
                self._set_tags(pos, text)
        self._pos_of = np.full(int(self.ids.max()) + 1 if n else 0, -1, np.int64)
        self._pos_of[self.ids] = np.arange(n)
        self._text_columns = _search_columns(df)
        self._text: TextSearch | None = None  # built on the first text query: a re-sort then costs nothing

    def __len__(self) -> int:
        return len(self.ids)

    def positions(self, item_ids) -> np.ndarray:
        """Row of each item id; -1 for ids not in the table."""
        ids = np.asarray(item_ids, dtype=np.int64).ravel()
        known = (ids >= 0) & (ids < len(self._pos_of))
        out = np.full(len(ids), -1, np.int64)
        out[known] = self._pos_of[ids[known]]
        return out

    def all_tags(self) -> list[str]:
        return sorted({t for tags in self.tags.values() for t in tags}, key=str.lower)

    def cluster_counts(self) -> list[tuple[int, int]]:
        if self.cluster is None or not len(self.cluster):
            return []
        low = int(self.cluster.min())
        counts = np.bincount(self.cluster - low)
        present = np.flatnonzero(counts)
        return list(zip((present + low).tolist(), counts[present].tolist()))

    def cell(self, pos: int) -> Cell:
        return Cell(int(self.ids[pos]), int(self.rank[pos]), float(self.score[pos]), float(self.label_score[pos]),
                    self.tags.get(pos, ()), "" if self.paths is None else self.paths[pos])

    def filter(self, f: Filters) -> np.ndarray:
        """Positions (in rank order) of the rows every active filter accepts."""
        n = len(self)
        masks = []
        text = f.text.strip()
        if text:
            if self._text is None:
                self._text = TextSearch(self._text_columns, n)
            masks.append(self._text.search(text))
        if f.tag is not None:
            tagged = np.zeros(n, bool)
            tagged[[pos for pos, tags in self.tags.items() if f.tag in tags]] = True
            masks.append(tagged)
        if f.label in ("labelled", "unlabelled"):
            labelled = np.isfinite(self.label_score) | self.has_tags
            masks.append(labelled if f.label == "labelled" else ~labelled)
        elif f.label is not None:
            masks.append(self.label_score >= float(f.label))  # NaN compares False
        if f.cluster is not None and self.cluster is not None:
            masks.append(self.cluster == f.cluster)
        if f.score_min is not None:
            masks.append(self.score >= f.score_min)
        if f.score_max is not None:
            masks.append(self.score <= f.score_max)
        if f.selection is not None:
            chosen = np.zeros(n, bool)
            pos = self.positions(f.selection)
            chosen[pos[pos >= 0]] = True
            masks.append(chosen)
        if not masks:
            return np.arange(n)
        return np.flatnonzero(np.logical_and.reduce(masks))

    def update_labels(self, labels: pd.DataFrame) -> np.ndarray:
        """Take new label scores/tags; returns the positions that changed.

        ``labels`` is indexed by item id (or has an ``item_id`` column) with a
        ``label_score`` (table style) or ``score`` (``Project.labels()`` style)
        column and/or ``tags`` (";"-joined text or a list).  NaN score and
        missing or empty tags mean "no label".
        """
        if "item_id" in labels.columns:
            labels = labels.set_index("item_id")
        pos = self.positions(labels.index.to_numpy())
        known = pos >= 0
        score_column = next((c for c in ("label_score", "score") if c in labels.columns), None)
        if score_column is not None:
            self.label_score[pos[known]] = pd.to_numeric(labels[score_column], errors="coerce").to_numpy(
                np.float64)[known]
        if "tags" in labels.columns:
            for p, tags in zip(pos[known].tolist(), labels["tags"].to_numpy(object)[known]):
                self._set_tags(p, tags)
        return pos[known]

    def _set_tags(self, pos: int, tags) -> None:
        if isinstance(tags, str):
            tags = tags.split(";")
        elif not isinstance(tags, (list, tuple, np.ndarray)):
            tags = ()  # NaN/None: no tags
        tags = tuple(t for t in (str(t).strip() for t in tags) if t)
        self.has_tags[pos] = bool(tags)
        if tags:
            self.tags[pos] = tags
        else:
            self.tags.pop(pos, None)


def _floats(df: pd.DataFrame, column: str) -> np.ndarray:
    if column not in df:
        return np.full(len(df), np.nan)
    return pd.to_numeric(df[column], errors="coerce").to_numpy(np.float64, copy=True)


def _search_columns(df: pd.DataFrame) -> list[pd.Series]:
    """Path and the text metadata columns: what the text filter looks in."""
    return [df[c] for c in df.columns
            if c == "path" or (is_metadata(c) and (pd.api.types.is_string_dtype(df[c]) or df[c].dtype == object
                                                   or isinstance(df[c].dtype, pd.CategoricalDtype)))]


class TextSearch:
    """Case-insensitive substring search over text columns: ~0.1 s per million rows.

    A column with few distinct values (telescope, band...) is searched in its
    distinct values only.  Any other column is kept lower-cased as one UTF-8
    blob: one regex scan of the blob finds the hits, and their byte offsets
    map back to rows - no Python work per row.  When the hits are too many for
    that to pay off, Arrow's vectorised ``match_substring`` scans the rows.
    """

    def __init__(self, columns: list[pd.Series], n: int):
        self._n = n
        self._columns = [self._prepare(c) for c in columns]

    @staticmethod
    def _prepare(column: pd.Series):
        text = column.astype("str").fillna("")
        sample = text.iloc[:: max(1, len(text) // 4096)]
        if sample.nunique() * 8 < len(sample):
            codes, values = pd.factorize(text)
            return codes, [str(v).lower() for v in values]
        low = pc.utf8_lower(pa.array(text.array)).cast(pa.large_string())
        if isinstance(low, pa.ChunkedArray):
            low = low.combine_chunks()
        offsets = np.frombuffer(low.buffers()[1], np.int64)[low.offset:low.offset + len(low) + 1]
        return low, offsets

    def search(self, text: str) -> np.ndarray:
        """Boolean mask of the rows where any column contains ``text`` (ignoring case)."""
        query = text.lower()
        mask = np.zeros(self._n, bool)
        for first, second in self._columns:
            if isinstance(second, list):  # distinct values: codes, values
                mask |= np.array([query in v for v in second] + [False])[first]  # code -1 (none) -> False
            else:
                mask |= self._search_blob(first, second, query)
        return mask

    def _search_blob(self, low: pa.Array, offsets: np.ndarray, query: str) -> np.ndarray:
        needle = query.encode()
        data = low.buffers()[2]
        mask = np.zeros(self._n, bool)
        if data is None:  # every value empty
            return mask
        cap = max(1000, self._n // 8)
        hits = re.compile(re.escape(needle)).finditer(memoryview(data))
        starts = np.fromiter(itertools.islice((m.start() for m in hits), cap + 1), np.int64)
        if len(starts) > cap:  # a common substring: a per-row scan is cheaper than a Python step per hit
            return pc.match_substring(low, query).to_numpy(zero_copy_only=False)
        row = np.searchsorted(offsets, starts, "right") - 1
        inside = row == np.searchsorted(offsets, starts + len(needle) - 1, "right") - 1  # not across two rows
        mask[row[inside]] = True
        return mask


def format_score(value: float) -> str:
    """Three significant digits; an en dash for "no score"."""
    return "\u2013" if not np.isfinite(value) else f"{value:.3g}"


def tag_initials(tag: str) -> str:
    """``strong lens`` -> ``SL``, ``merger`` -> ``Me``: short enough for a badge, still tellable apart."""
    words = tag.replace("_", " ").replace("-", " ").split()
    if len(words) > 1:
        return "".join(w[0] for w in words[:2]).upper()
    return tag[:2].capitalize()


def tag_colour(tag: str) -> QColor:
    """A stable colour per tag name (same tag, same colour, in every session)."""
    return QColor.fromHsv(zlib.crc32(tag.encode()) % 360, 150, 185)


class RankingModel(QAbstractTableModel, ThumbnailUser):
    """The visible items in rank order, wrapped into rows of :attr:`columns` cells.

    The *flat* number of a cell (``row * columns + column``) is its place in the
    visible order.  Cells past the last item (end of the last row) are empty.
    """

    def __init__(self, parent=None):
        super().__init__(parent)
        self.table = RankingTable(pd.DataFrame(index=pd.Index([], dtype=np.int64)))
        self._order = np.empty(0, np.int64)
        self._columns = 1

    # ----------------------------------------------------------------- setup
    def set_table(self, table: RankingTable, order: np.ndarray) -> None:
        self.beginResetModel()
        self.table, self._order = table, np.asarray(order, np.int64)
        self.endResetModel()

    def set_order(self, order: np.ndarray) -> None:
        self.set_table(self.table, order)

    def set_columns(self, columns: int) -> None:
        self.beginResetModel()
        self._columns = max(1, int(columns))
        self.endResetModel()

    @property
    def columns(self) -> int:
        return self._columns

    @property
    def count(self) -> int:
        """Number of visible items."""
        return len(self._order)

    # ------------------------------------------------------------ addressing
    def flat(self, index: QModelIndex) -> int:
        return index.row() * self._columns + index.column()

    def index_at(self, flat: int) -> QModelIndex:
        if not 0 <= flat < self.count:
            return QModelIndex()
        return self.index(flat // self._columns, flat % self._columns)

    def item_at(self, index: QModelIndex) -> int | None:
        if not index.isValid() or self.flat(index) >= self.count:
            return None
        return int(self.table.ids[self._order[self.flat(index)]])

    def flat_of_positions(self, positions) -> np.ndarray:
        """Place in the visible order of each table position; -1 where filtered out."""
        positions = np.asarray(positions, np.int64)
        flat = np.searchsorted(self._order, positions)  # the order is ascending: it keeps the table's
        inside = flat < self.count
        hit = np.zeros(len(positions), bool)
        hit[inside] = self._order[flat[inside]] == positions[inside]
        return np.where(hit, flat, -1)

    def index_of_item(self, item_id: int) -> QModelIndex:
        flat = self.flat_of_positions(self.table.positions([item_id]))[0]
        return self.index_at(int(flat))

    def visible_ids(self) -> np.ndarray:
        return self.table.ids[self._order]

    def refresh_positions(self, positions) -> None:
        """Repaint the cells of these table positions (after a label change)."""
        flat = self.flat_of_positions(positions)
        flat = flat[flat >= 0]
        if len(flat):
            top, bottom = int(flat.min()) // self._columns, int(flat.max()) // self._columns
            self.dataChanged.emit(self.index(top, 0), self.index(bottom, self._columns - 1))

    def _on_thumbnail(self, item_id: int) -> None:
        index = self.index_of_item(item_id)
        if index.isValid():
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])

    # ------------------------------------------------------------ Qt model
    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else -(-self.count // self._columns)

    def columnCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else self._columns

    def flags(self, index: QModelIndex):
        if self.item_at(index) is None:
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def cell_at(self, index: QModelIndex) -> Cell | None:
        """What a cell shows (None past the last item)."""
        if not index.isValid() or self.flat(index) >= self.count:
            return None
        return self.table.cell(int(self._order[self.flat(index)]))

    def thumbnail_at(self, index: QModelIndex):
        """The cell's thumbnail if loaded (else None, and it is requested)."""
        cell = self.cell_at(index)
        if cell is None or self._thumbnails is None or not cell.path:
            return None
        return self._thumbnails.get(cell.item_id, cell.path)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        # Python callers (the delegate) use cell_at/thumbnail_at: with PySide6 6.12 on
        # CPython 3.11 every invalid QVariant read back in Python drops a reference to None.
        cell = self.cell_at(index)
        if cell is None:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return f"#{cell.rank}  {format_score(cell.score)}"
        if role == Qt.ItemDataRole.DecorationRole:
            return self.thumbnail_at(index)
        if role == Qt.ItemDataRole.ToolTipRole:
            return _tooltip(cell)
        return None


def _tooltip(cell: Cell) -> str:
    rank = f"#{cell.rank}" if cell.rank else "unranked"
    label = "no label" if not np.isfinite(cell.label_score) else f"label {int(cell.label_score)}"
    tags = f" \u00b7 tags: {', '.join(cell.tags)}" if cell.tags else ""
    return (f"<b>{rank}</b> \u00b7 anomaly score {format_score(cell.score)}<br>{label}{tags}<br>"
            f"<span style='color:#8a93a6'>item {cell.item_id} \u00b7 {cell.path}</span>")


class CellDelegate(QStyledItemDelegate):
    """Paints a cell: thumbnail, label badge and tag initials on it, rank and score under it."""

    PAD = 6
    TEXT_GAP = 4

    def __init__(self, thumb_size: int = DEFAULT_THUMB, parent=None):
        super().__init__(parent)
        self.thumb_size = thumb_size

    def cell_size(self, font: QFont) -> QSize:
        text_h = QFontMetrics(font).height()
        return QSize(self.thumb_size + 2 * self.PAD + 4, self.thumb_size + 2 * self.PAD + self.TEXT_GAP + text_h)

    def paint(self, painter: QPainter, option, index: QModelIndex) -> None:
        model: RankingModel = index.model()
        cell = model.cell_at(index)
        if cell is None:
            return
        pixmap = model.thumbnail_at(index)
        palette = QGuiApplication.palette()  # the grid's own highlight is transparent (see RankingGrid)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        card = QRectF(option.rect).adjusted(2.5, 2.5, -2.5, -2.5)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        if selected:
            fill = QColor(palette.color(QPalette.ColorRole.Highlight))
            fill.setAlpha(70)
            painter.setPen(QPen(palette.color(QPalette.ColorRole.Highlight), 2))
            painter.setBrush(fill)
            painter.drawRoundedRect(card, 6, 6)
        elif option.state & QStyle.StateFlag.State_MouseOver:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(palette.color(QPalette.ColorRole.AlternateBase))
            painter.drawRoundedRect(card, 6, 6)
        s = self.thumb_size
        thumb = QRect(option.rect.center().x() - s // 2, option.rect.top() + self.PAD, s, s)
        paint_thumbnail(painter, thumb, pixmap)
        self._paint_badges(painter, thumb, cell, option.font)
        self._paint_caption(painter, option, thumb, cell)
        painter.restore()

    def _paint_caption(self, painter, option, thumb: QRect, cell: Cell) -> None:
        palette = QGuiApplication.palette()
        text_h = QFontMetrics(option.font).height()
        line = QRect(thumb.left(), thumb.bottom() + 1 + self.TEXT_GAP, thumb.width(), text_h)
        bold = QFont(option.font)
        bold.setBold(True)
        painter.setFont(bold)
        painter.setPen(palette.color(QPalette.ColorRole.Text))  # the selection card is translucent: keep text colour
        painter.drawText(line, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                         f"#{cell.rank}" if cell.rank else "\u2013")
        painter.setFont(option.font)
        dim = QColor(palette.color(QPalette.ColorRole.Text))
        dim.setAlpha(170)
        painter.setPen(dim)
        painter.drawText(line, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, format_score(cell.score))

    def _paint_badges(self, painter, thumb: QRect, cell: Cell, font: QFont) -> None:
        small = QFont(font)
        small.setPointSizeF(max(6.5, font.pointSizeF() * 0.8))
        small.setBold(True)
        painter.setFont(small)
        metrics = QFontMetrics(small)
        badge = metrics.height() + 4
        if np.isfinite(cell.label_score):
            score = int(np.clip(cell.label_score, 0, 5))
            circle = QRectF(thumb.right() - badge - 3, thumb.top() + 4, badge, badge)
            painter.setPen(QPen(QColor(0, 0, 0, 140), 1.5))
            painter.setBrush(QColor(SCORE_COLOURS[score]))
            painter.drawEllipse(circle)
            painter.setPen(QColor("white"))
            painter.drawText(circle, Qt.AlignmentFlag.AlignCenter, str(score))
        chips = [(tag_initials(t), tag_colour(t)) for t in cell.tags]
        x, top = thumb.left() + 4, thumb.bottom() - 3 - metrics.height()
        for i, (text, colour) in enumerate(chips):
            width = metrics.horizontalAdvance(text) + 8
            more = f"+{len(chips) - i}"
            room = thumb.right() - 4 - x - (metrics.horizontalAdvance(more) + 11 if i < len(chips) - 1 else 0)
            if width > room:  # no space left: say how many more
                text, width, colour = more, metrics.horizontalAdvance(more) + 8, QColor(40, 44, 52, 230)
            self._chip(painter, QRectF(x, top, width, metrics.height()), text, colour)
            if text == more:
                break
            x += width + 3

    @staticmethod
    def _chip(painter, rect: QRectF, text: str, colour: QColor) -> None:
        painter.setPen(QPen(QColor(0, 0, 0, 120), 1))
        painter.setBrush(colour)
        painter.drawRoundedRect(rect, 4, 4)
        painter.setPen(QColor("white"))
        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)


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

        finite = table.score[np.isfinite(table.score)]
        lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 0.0)
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
            spin.setEnabled(len(finite) > 0)
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

    def _apply_filters(self) -> None:
        self._text_timer.stop()
        current = self._current
        self.model.set_order(self.model.table.filter(self.filters()))
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

    def set_table(self, df: pd.DataFrame) -> None:
        """Show a table like ``project_table`` (index item_id, in ranking order); filters that still apply stay."""
        current = self._current
        self.model.set_table(RankingTable(df), np.empty(0, np.int64))
        self._fill_choices()
        self.model.set_order(self.model.table.filter(self.filters()))
        self._restore_current(current)
        self._show_count()

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
