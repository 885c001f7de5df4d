"""Compare two feature spaces side by side: one detector's top items in each, with thumbnails and rank changes.

Guidance is judged by what it does to the top of the ranking: which nuisance-only outliers left it, which
anomalies came up.  The dialog puts the top ``TOP`` of a detector in two spaces (raw included) next to
each other; every item says where it ranks in the other space and how far it moved, and the items that are
not in the other space's top at all (what the guidance pushed out, or brought in) are highlighted.  It
reads the scores the table already holds (``score_<detector>`` and ``score_<detector>@<space>``): nothing
is recomputed, so it opens at once and never blocks on a model.  Double-clicking an item shows it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from PySide6 import QtCore, QtGui, QtWidgets
from PySide6.QtCore import Qt, Signal

from oddscope.app.thumbs import ThumbnailCache
from oddscope.core.project.layout import RAW_SPACE, SCORE_PREFIX, score_array, space_name, split_space
from oddscope.core.project.table import rank_of

TOP = 50
ICON = 56
MOVED_IN = QtGui.QColor(255, 214, 153)  # not in the other space's top: this space brought it up
ROLE_ID = Qt.UserRole


def comparable_detectors(table: pd.DataFrame, left: str | None, right: str | None) -> list[str]:
    """Detectors scored in both spaces (None: raw), in the table's order."""
    names = [c[len(SCORE_PREFIX):] for c in table.columns if c.startswith(SCORE_PREFIX)]
    bases = dict.fromkeys(split_space(n)[0] for n in names)
    return [b for b in bases if space_name(b, left) in names and space_name(b, right) in names]


def space_ranks(table: pd.DataFrame, detector: str, space: str | None) -> pd.Series:
    """1-based rank of every item of the table by ``detector`` in ``space`` (0: not scored), by item id."""
    scores = table[score_array(space_name(detector, space))].to_numpy(np.float64)
    return pd.Series(rank_of(scores), index=table.index)


def compare(table: pd.DataFrame, detector: str, left: str | None, right: str | None,
            top: int = TOP) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The top ``top`` of each space, best first: ``item_id`` (index), ``rank``, ``other`` (the rank in the
    other space, 0 when unscored there) and ``moved``: places gained from the left space to the right one
    (positive = higher on the right), on both sides, so an arrow means the same in both lists."""
    ranks = space_ranks(table, detector, left), space_ranks(table, detector, right)
    sides = []
    for sign, (here, there) in ((1, ranks), (-1, ranks[::-1])):
        scored = here[here > 0].sort_values(kind="stable").iloc[:top]
        other = there.reindex(scored.index)
        sides.append(pd.DataFrame({"rank": scored, "other": other, "moved": sign * (scored - other)}))
    return sides[0], sides[1]


def moved_text(rank: int, other: int, moved: int, other_name: str) -> str:
    """``#rank · other_name #other (▲n)``: ▲ up, ▼ down, = level from the left space to the right one."""
    if other == 0:
        return f"#{rank} · not scored in {other_name}"
    arrow = f"▲{moved}" if moved > 0 else f"▼{-moved}" if moved < 0 else "="
    return f"#{rank} · {other_name} #{other} ({arrow})"


class RankingColumn(QtWidgets.QWidget):
    """One space's top items: a header and a list of thumbnails with their rank here and there."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.header = QtWidgets.QLabel()
        self.header.setObjectName("compareHeader")
        font = self.header.font()
        font.setBold(True)
        self.header.setFont(font)
        self.list = QtWidgets.QListWidget()
        self.list.setIconSize(QtCore.QSize(ICON, ICON))
        self.list.setSelectionMode(QtWidgets.QAbstractItemView.SingleSelection)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.header)
        layout.addWidget(self.list, 1)

    def fill(self, title: str, side: pd.DataFrame, other_name: str, top: int, names: pd.Series,
             pixmap) -> None:
        """Show ``side`` (see :func:`compare`); ``pixmap(item_id)`` gives a thumbnail or None (loading)."""
        outside = int((side["other"].eq(0) | side["other"].gt(top)).sum())
        self.header.setText(f"{title}: top {len(side)} ({outside} not in {other_name}'s top {top})")
        self.list.clear()
        for item_id, row in side.iterrows():
            rank, other = int(row["rank"]), int(row["other"])
            text = moved_text(rank, other, int(row["moved"]) if other else 0, other_name)
            item = QtWidgets.QListWidgetItem(f"{text}\n{names.get(item_id, '')}")
            item.setData(ROLE_ID, int(item_id))
            item.setSizeHint(QtCore.QSize(0, ICON + 6))  # a row fits its thumbnail before the thumbnail is there
            if other == 0 or other > top:
                item.setBackground(MOVED_IN)
                item.setForeground(QtGui.QColor(Qt.black))
                item.setToolTip(f"Not in {other_name}'s top {top}: {title} brought it up")
            icon = pixmap(int(item_id))
            if icon is not None:
                item.setIcon(QtGui.QIcon(icon))
            self.list.addItem(item)

    def set_icon(self, item_id: int, pixmap) -> None:
        for row in range(self.list.count()):
            item = self.list.item(row)
            if item.data(ROLE_ID) == item_id:
                item.setIcon(QtGui.QIcon(pixmap))


class CompareSpacesDialog(QtWidgets.QDialog):
    """Two spaces' top rankings side by side (see the module docstring); ``item_chosen(id)`` on double-click."""

    item_chosen = Signal(int)

    def __init__(self, table: pd.DataFrame, spaces: list[str], thumbnails: ThumbnailCache | None,
                 left: str | None = None, right: str | None = None, detector: str | None = None,
                 top: int = TOP, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Compare feature spaces")
        self.table, self.thumbnails, self.top = table, thumbnails, top
        self.names = table["path"].map(lambda p: str(p).replace("\\", "/").rsplit("/", 1)[-1])
        self.left_combo, self.right_combo = QtWidgets.QComboBox(), QtWidgets.QComboBox()
        for combo in (self.left_combo, self.right_combo):
            combo.addItem(RAW_SPACE, None)
            for name in spaces:
                combo.addItem(name, name)
        self.left_combo.setCurrentIndex(self.left_combo.findData(left))
        self.right_combo.setCurrentIndex(max(0, self.right_combo.findData(right)))
        self.detector_combo = QtWidgets.QComboBox()
        self.wanted_detector = detector
        self.note = QtWidgets.QLabel()
        self.note.setWordWrap(True)
        self.columns = RankingColumn(), RankingColumn()
        form = QtWidgets.QHBoxLayout()
        for label, widget in (("Detector", self.detector_combo), ("Left", self.left_combo),
                              ("Right", self.right_combo)):
            form.addWidget(QtWidgets.QLabel(label))
            form.addWidget(widget)
        form.addStretch(1)
        lists = QtWidgets.QHBoxLayout()
        for column in self.columns:
            lists.addWidget(column, 1)
            column.list.itemDoubleClicked.connect(lambda item: self.item_chosen.emit(item.data(ROLE_ID)))
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.Close)
        buttons.rejected.connect(self.reject)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.note)
        layout.addLayout(lists, 1)
        layout.addWidget(buttons)
        self.resize(760, 640)
        self.left_combo.currentIndexChanged.connect(self._spaces_changed)
        self.right_combo.currentIndexChanged.connect(self._spaces_changed)
        self.detector_combo.currentIndexChanged.connect(self.refresh)
        if thumbnails is not None:
            thumbnails.ready.connect(self._on_thumbnail)
        self._spaces_changed()

    def spaces(self) -> tuple[str | None, str | None]:
        return self.left_combo.currentData(), self.right_combo.currentData()

    def _spaces_changed(self) -> None:
        """Offer the detectors scored in both spaces, keeping the one chosen where it still is."""
        wanted = self.detector_combo.currentText() or self.wanted_detector
        detectors = comparable_detectors(self.table, *self.spaces())
        self.detector_combo.blockSignals(True)
        self.detector_combo.clear()
        self.detector_combo.addItems(detectors)
        if wanted in detectors:
            self.detector_combo.setCurrentText(wanted)
        self.detector_combo.blockSignals(False)
        self.refresh()

    def refresh(self) -> None:
        left, right = self.spaces()
        detector = self.detector_combo.currentText()
        if not detector:
            self.note.setText("No detector is scored in both spaces.")
            for column in self.columns:
                column.list.clear()
                column.header.clear()
            return
        sides = compare(self.table, detector, left, right, self.top)
        shared = len(sides[0].index.intersection(sides[1].index))
        names = (left or RAW_SPACE, right or RAW_SPACE)
        self.note.setText(f"{detector}: {shared} of the top {self.top} are in both. Each item shows its rank here, "
                          "its rank in the other space and how it moved from left to right (▲ up, ▼ down); "
                          "highlighted items "
                          "are not in the other space's top. Double-click one to show it.")
        for column, side, title, other in zip(self.columns, sides, names, names[::-1]):
            column.fill(title, side, other, self.top, self.names, self._pixmap)

    def _pixmap(self, item_id: int):
        if self.thumbnails is None:
            return None
        return self.thumbnails.get(item_id, self.table.at[item_id, "path"])

    def _on_thumbnail(self, item_id: int) -> None:
        pixmap = self._pixmap(item_id)
        if pixmap is not None:
            for column in self.columns:
                column.set_icon(item_id, pixmap)

    def done(self, result: int) -> None:
        if self.thumbnails is not None:
            self.thumbnails.ready.disconnect(self._on_thumbnail)
            self.thumbnails = None
        super().done(result)
