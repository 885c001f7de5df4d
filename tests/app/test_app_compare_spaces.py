"""The Compare dialog: two feature spaces' top rankings side by side, from the scores already in the table."""
import os

import numpy as np
import pandas as pd
import pytest
import test_app_guidance_panel as panel_tests
from PySide6.QtCore import Qt

from oddscope.app.compare_spaces import MOVED_IN, TOP, comparable_detectors, compare

SPACE = panel_tests.SPACE
guided_dir, guided_window = panel_tests.guided_dir, panel_tests.guided_window  # the Guidance dock's fixtures

SCREENSHOT = os.environ.get("ODDSCOPE_COMPARE_SHOT", "")  # set to save the dialog's screenshot there


def ids_of(column):
    return [column.list.item(r).data(Qt.UserRole) for r in range(column.list.count())]


def test_compare_puts_each_items_rank_in_the_other_space_and_how_far_it_moved():
    table = pd.DataFrame({"score_knn": [0.9, 0.8, 0.1, np.nan], "score_knn@s": [0.1, 0.7, 0.9, 0.5],
                          "score_lof": [1, 2, 3, 4]}, index=[10, 11, 12, 13])
    assert comparable_detectors(table, None, "s") == ["knn"]
    left, right = compare(table, "knn", None, "s", top=2)
    assert left.index.tolist() == [10, 11] and left["other"].tolist() == [4, 2] and left["moved"].tolist() == [-3, 0]
    assert right.index.tolist() == [12, 11] and right["other"].tolist() == [3, 2]
    assert right["moved"].tolist() == [2, 0]


@pytest.fixture
def dialog(qtbot, guided_window):
    dialog = guided_window.guidance.compare()
    qtbot.waitUntil(dialog.isVisible)
    yield dialog
    dialog.reject()


def test_the_dialog_shows_raw_and_the_space_side_by_side_from_the_stored_scores(qtbot, guided_window, dialog):
    table = guided_window.model.table
    assert guided_window.guidance.panel.compare_button.isEnabled()
    assert dialog.spaces() == (None, SPACE)
    detector = dialog.detector_combo.currentText()
    assert detector == guided_window.ranking_combo.currentText().split("@")[0]
    left, right = dialog.columns
    for column, array in zip((left, right), (f"score_{detector}", f"score_{detector}@{SPACE}")):
        scores = table[array].to_numpy()
        assert ids_of(column) == table.index[np.argsort(-scores, kind="stable")[:TOP]].tolist()
    raw_top, space_top = set(ids_of(left)), set(ids_of(right))
    for row in range(left.list.count()):  # highlighted exactly when the other space's top lacks it
        item = left.list.item(row)
        assert (item.background().color() == MOVED_IN) == (item.data(Qt.UserRole) not in space_top)
    assert raw_top != space_top  # erasing the pose moves the top on this demo
    first = right.list.item(0)
    other = int((-table[f"score_{detector}"]).rank(method="first")[first.data(Qt.UserRole)])
    moved = f"▲{other - 1}" if other > 1 else "="
    assert first.text().startswith(f"#1 · raw #{other} ({moved})")
    right.list.itemDoubleClicked.emit(first)
    assert guided_window.model.current == first.data(Qt.UserRole)


def test_the_same_space_twice_moves_nothing(dialog):
    dialog.right_combo.setCurrentIndex(dialog.right_combo.findData(None))
    left, right = dialog.columns
    assert ids_of(left) == ids_of(right)
    assert all(left.list.item(r).background().color() != MOVED_IN for r in range(left.list.count()))
    assert all("(=)" in left.list.item(r).text() for r in range(left.list.count()))


def test_screenshot_of_the_compare_dialog(qtbot, dialog, tmp_path):
    left, right = dialog.columns
    qtbot.waitUntil(lambda: all(not c.list.item(r).icon().isNull() for c in (left, right) for r in range(8)),
                    timeout=20_000)
    path = SCREENSHOT or str(tmp_path / "compare_spaces.png")
    assert dialog.grab().save(path)
