"""Neighbours strip: background lookups through a fake query function, clicks, metric and k changes."""

import os
import threading

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


import numpy as np
import pandas as pd
import pytest
from PIL import Image
from PySide6.QtCore import Qt

from oddscope.app.neighbours import NeighboursPanel
from oddscope.app.thumbs import ThumbnailCache

N = 30


class FakeIndex:
    """Neighbours of item i: the next k ids; distance grows with the step and depends on the metric."""

    SCALE = {"cosine": 0.01, "l2": 1.0, "l1": 2.0}

    def __init__(self, delay_for=None):
        self.calls = []
        self.threads = set()
        self.delay_for = delay_for or {}

    def __call__(self, item_id, k, metric):
        self.calls.append((item_id, k, metric))
        self.threads.add(threading.get_ident())
        if item_id in self.delay_for:
            self.delay_for[item_id].wait(5)
        if item_id == 99:
            raise KeyError("item 99 has no features (skipped, reference or not analysed)")
        ids = (item_id + np.arange(1, k + 1)) % N
        return pd.DataFrame({"item_id": ids, "distance": np.arange(1, k + 1) * self.SCALE[metric]})


@pytest.fixture
def paths(tmp_path):
    rng = np.random.default_rng(0)
    out = {}
    for i in range(N):
        out[i] = str(tmp_path / f"n{i}.png")
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(out[i])
    return pd.Series(out)


@pytest.fixture
def panel(qtbot, tmp_path, paths):
    cache = ThumbnailCache(tmp_path / "thumbs", size=64)
    widget = NeighboursPanel(cache)
    qtbot.addWidget(widget)
    widget.set_paths(paths)
    widget.k_spin.setValue(5)
    widget.resize(700, 200)
    widget.show()
    qtbot.waitExposed(widget)
    yield widget
    cache.close()


def shown(panel):
    return list(panel.neighbour_ids())


def test_shows_the_results_of_the_query_function_off_the_gui_thread(qtbot, panel):
    fake = FakeIndex()
    panel.set_query_function(fake)
    assert panel.pages.currentWidget() is panel.message  # nothing to show before an item
    panel.show_item(3)
    qtbot.waitUntil(lambda: shown(panel) == [4, 5, 6, 7, 8])
    assert fake.calls == [(3, 5, "cosine")]
    assert threading.get_ident() not in fake.threads
    model = panel.model
    assert [model.index(r).data(Qt.DisplayRole) for r in range(5)] == ["0.01", "0.02", "0.03", "0.04", "0.05"]
    assert panel.pages.currentWidget() is panel.strip and "5 nearest to item 3" in panel.status.text()
    qtbot.waitUntil(lambda: model.thumbnail_at(model.index(0)) is not None, timeout=10000)
    panel.grab()  # paints thumbnails, place numbers and distances


def test_clicking_a_neighbour_walks_to_it(qtbot, panel):
    panel.set_query_function(FakeIndex())
    panel.show_item(10)
    qtbot.waitUntil(lambda: len(shown(panel)) == 5)
    third = panel.strip.visualRect(panel.model.index(2)).center()
    with qtbot.waitSignal(panel.walk_to) as walked:
        qtbot.mouseClick(panel.strip.viewport(), Qt.LeftButton, pos=third)
    assert walked.args == [13]


def test_metric_and_k_changes_query_again(qtbot, panel):
    fake = FakeIndex()
    panel.set_query_function(fake)
    panel.show_item(0)
    qtbot.waitUntil(lambda: len(shown(panel)) == 5)
    panel.metric_combo.setFocus()
    qtbot.keyClick(panel.metric_combo, Qt.Key_Down)  # Cosine -> L2
    qtbot.waitUntil(lambda: panel.model.distances[0] == 1.0)
    assert fake.calls[-1] == (0, 5, "l2") and panel.current_metric() == "l2"
    panel.k_spin.selectAll()
    qtbot.keyClicks(panel.k_spin, "8")
    qtbot.keyClick(panel.k_spin, Qt.Key_Return)
    qtbot.waitUntil(lambda: len(shown(panel)) == 8)
    assert fake.calls[-1] == (0, 8, "l2")


def test_more_like_this_emits_the_item_and_its_neighbours(qtbot, panel):
    panel.set_query_function(FakeIndex())
    assert not panel.more_button.isEnabled()
    panel.show_item(28)
    qtbot.waitUntil(panel.more_button.isEnabled)
    with qtbot.waitSignal(panel.more_like_this) as more:
        qtbot.mouseClick(panel.more_button, Qt.LeftButton)
    assert more.args[0].tolist() == [28, 29, 0, 1, 2, 3]


def test_a_result_for_an_item_no_longer_shown_is_dropped(qtbot, panel):
    slow = threading.Event()
    fake = FakeIndex(delay_for={1: slow})
    panel.set_query_function(fake)
    panel.show_item(1)  # its lookup blocks until released
    qtbot.waitUntil(lambda: len(fake.calls) == 1)
    panel.show_item(2)  # queued behind it
    panel.show_item(20)  # supersedes item 2 before its lookup starts
    slow.set()
    qtbot.waitUntil(lambda: shown(panel) == [21, 22, 23, 24, 25])
    qtbot.wait(100)
    assert shown(panel) == [21, 22, 23, 24, 25] and panel.item() == 20
    assert [c[0] for c in fake.calls] == [1, 20]  # item 2 was skipped, item 1's answer ignored


def test_a_failing_lookup_is_reported_in_the_panel(qtbot, panel):
    panel.set_query_function(FakeIndex())
    panel.show_item(99)
    qtbot.waitUntil(lambda: "no features" in panel.message.text())
    assert panel.pages.currentWidget() is panel.message and shown(panel) == []
    assert not panel.more_button.isEnabled()
    panel.show_item(None)
    assert panel.message.text().startswith("Select an item")


def test_a_slow_first_search_shows_its_progress(qtbot, panel):
    """Building the index (minutes at 10^6 items) reports through the panel, from the lookup thread."""
    gate = threading.Event()
    fake = FakeIndex(delay_for={2: gate})
    panel.set_query_function(fake)
    panel.show_item(2)
    qtbot.waitUntil(lambda: bool(fake.calls))  # the lookup runs and waits at the gate
    threading.Thread(target=panel.report_progress, args=("Building neighbour index", 40, 100)).start()
    qtbot.waitUntil(lambda: "building neighbour index: 40%" in panel.status.text())
    gate.set()
    qtbot.waitUntil(lambda: shown(panel) == [3, 4, 5, 6, 7])
    assert "5 nearest to item 2" in panel.status.text()


def test_approximate_answers_say_so_and_a_missing_index_is_asked_for(qtbot, panel):
    """A reduced index's answers carry ``attrs["approximate"]``; a lookup answered IndexNeeded shows the build
    and asks for it (the window builds it elsewhere), and :meth:`requery` fills the strip afterwards."""
    from oddscope.app.jobs import IndexNeeded

    built = threading.Event()

    def query(item_id, k, metric):
        if not built.is_set():
            return IndexNeeded(metric)
        table = FakeIndex()(item_id, k, metric)
        table.attrs["approximate"] = "PCA to 256 dimensions"
        return table

    panel.set_query_function(query)
    with qtbot.waitSignal(panel.index_needed, timeout=5_000) as asked:
        panel.show_item(3)
    assert asked.args == ["cosine"] and panel.message.text() == "Building the similar-items index\u2026"
    assert panel.pages.currentWidget() is panel.message and not shown(panel)
    built.set()
    panel.requery()
    qtbot.waitUntil(lambda: shown(panel) == [4, 5, 6, 7, 8])
    assert panel.status.text().endswith("approximate: PCA to 256 dimensions")
    assert "PCA to 256 dimensions" in panel.status.toolTip()
