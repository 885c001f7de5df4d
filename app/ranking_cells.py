"""One cell of the ranking grid: the Qt model over the visible order and the delegate that paints a cell.

The *flat* number of a cell (``row * columns + column``) is its place in the
visible order; a cell's thumbnail, label badge, tag initials, rank and score
are worked out only when Qt paints it.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QGuiApplication, QPainter, QPalette, QPen
from PySide6.QtWidgets import QStyle, QStyledItemDelegate

from oddscope.app.ranking_table import SCORE_COLOURS, Cell, RankingTable, format_score, tag_initials
from oddscope.app.thumbs import ThumbnailUser, paint_thumbnail

DEFAULT_THUMB = 128


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
