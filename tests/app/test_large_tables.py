"""Survey-scale tables: prepared, re-sorted and filtered in worker lanes, swapped in whole, never on the GUI thread.

The lanes take over from :data:`oddscope.app.model.ASYNC_ITEMS` items; these tests set it to 0 so that
a six-item project goes the same way as five million.
"""
import threading

import numpy as np
import pandas as pd
import pytest
from small_projects import six_item_project

from oddscope.app import model as model_module
from oddscope.app import ranking as ranking_module
from oddscope.app.model import ProjectModel
from oddscope.app.ranking import RankingView
from oddscope.app.worker import Lane
from oddscope.core.project.store import Project
from oddscope.core.project.table import read_project_table

KNN_ORDER = [3, 1, 5, 2, 4, 0]


@pytest.fixture
def project_dir(tmp_path):
    folder = six_item_project(tmp_path, n_ok=5)
    with Project.open(folder, writable=True) as project:
        project.set_label(1, tags=["lens"])
    return folder


@pytest.fixture
def gui_thread_calls(monkeypatch):
    """Wrap the table work so each call records whether it ran on the GUI thread."""
    calls = []

    def watched(fn):
        def wrapper(*args, **kwargs):
            calls.append((fn.__name__, threading.current_thread() is threading.main_thread()))
            return fn(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(model_module, "ASYNC_ITEMS", 0)
    for module, name in ((model_module, "table_state"), (model_module, "reranked_state"),
                         (ranking_module, "_filtered")):
        monkeypatch.setattr(module, name, watched(getattr(module, name)))
    return calls


@pytest.fixture
def model(qtbot, project_dir, gui_thread_calls):
    m = ProjectModel()
    m.use_lane(Lane("table", parent=m))
    with qtbot.waitSignal(m.loaded, timeout=10_000):
        m.set_loaded(Project.open(project_dir, writable=True), read_project_table(project_dir))
        assert m.table is None and m.busy  # nothing prepared on the GUI thread: it comes from the lane
    yield m
    m.close()


def test_opening_prepares_the_table_in_a_worker(model, gui_thread_calls):
    assert gui_thread_calls == [("table_state", False)]
    assert list(model.table.index) == KNN_ORDER
    assert list(model.map_ids) == [0, 1, 2, 3, 5]
    assert model.map_xy()[model.map_position(5)].tolist() == [10.0, 11.0]
    assert (model.n_ok, model.labelled_count()) == (5, 1)
    assert list(model.state.grid.ids) == KNN_ORDER


def test_a_new_ranking_is_sorted_in_a_worker_and_swapped_in(qtbot, model, gui_thread_calls):
    points = model.state.points
    with qtbot.waitSignal(model.table_changed, timeout=10_000):
        model.apply_ranking("custom", np.array([0.6, np.nan, 0.8, 0.1, np.nan, 0.7]), None)
        assert list(model.table.index) == KNN_ORDER and model.busy  # the old table shows until the swap
    assert ("reranked_state", False) in gui_thread_calls
    assert not any(on_gui for _, on_gui in gui_thread_calls)
    assert list(model.table.index) == [2, 5, 0, 3, 1, 4]
    assert list(model.table["rank"]) == [1, 2, 3, 4, 0, 0]
    assert list(model.state.grid.ids) == [2, 5, 0, 3, 1, 4]
    assert model.ranking() == "custom"
    assert model.state.points is points  # the same map: the map view is left alone (no pass over its points)


def test_a_label_given_while_the_table_is_re_sorted_survives_the_swap(qtbot, model):
    with qtbot.waitSignal(model.table_changed, timeout=10_000):
        model.apply_ranking("custom", np.array([0.6, 0.2, 0.8, 0.1, 0.3, 0.7]), None)
        model.set_label(3, 4)  # before the worker's table arrives
        model.add_tag(0, "merger")
    assert model.label_of(3) == (4, []) and model.label_of(0) == (None, ["merger"])
    grid = model.state.grid
    assert grid.label_score[grid.positions([3])[0]] == 4
    assert grid.tags[int(grid.positions([0])[0])] == ("merger",)
    assert model.labelled_count() == 3
    # a label writes a one-byte code in place; no Python string per row (their passes held the GIL at 5M items)
    assert isinstance(model.table["tags"].dtype, pd.CategoricalDtype)
    assert list(model.table["tags"].cat.categories) == ["", "lens", "merger"]


def test_closing_drops_a_table_still_being_prepared(qtbot, project_dir, gui_thread_calls):
    m = ProjectModel()
    m.use_lane(Lane("table", parent=m))
    loaded = []
    m.loaded.connect(lambda: loaded.append(True))
    m.set_loaded(Project.open(project_dir, writable=True), read_project_table(project_dir))
    m.close()
    qtbot.waitUntil(lambda: not m.busy, timeout=10_000)
    qtbot.wait(50)
    assert not loaded and m.table is None and m.project is None
    Project.open(project_dir, writable=True).close()  # the writer lock was let go


@pytest.fixture
def view(qtbot, model):
    v = RankingView()
    qtbot.addWidget(v)
    v.use_lane(Lane("filter", parent=v))
    v.set_table(model.state.grid)
    return v


def test_filters_run_in_a_worker_and_the_grid_keeps_its_rows_meanwhile(qtbot, view, gui_thread_calls):
    view.label_combo.setCurrentIndex(1)  # unlabelled
    assert list(view.visible_ids()) == KNN_ORDER and view.filtering
    qtbot.waitUntil(lambda: not view.filtering, timeout=10_000)
    assert list(view.visible_ids()) == [3, 5, 2, 4, 0]
    assert ("_filtered", False) in gui_thread_calls
    assert not any(on_gui for _, on_gui in gui_thread_calls)
    view.search.setText("im5")
    qtbot.waitUntil(lambda: list(view.visible_ids()) == [5], timeout=10_000)
    view.reset_filters()  # no filter: every row at once, no task
    assert list(view.visible_ids()) == KNN_ORDER and not view.filtering


def test_a_filter_result_for_a_replaced_table_is_dropped(qtbot, view, model):
    view.label_combo.setCurrentIndex(2)  # labelled: item 1
    with qtbot.waitSignal(model.table_changed, timeout=10_000):
        model.apply_ranking("custom", np.array([0.6, 0.2, 0.8, 0.1, 0.3, 0.7]), None)
    view.set_table(model.state.grid)  # as the window does on table_changed
    qtbot.waitUntil(lambda: not view.filtering, timeout=10_000)
    assert view.model.table is model.state.grid
    assert list(view.visible_ids()) == [1]
