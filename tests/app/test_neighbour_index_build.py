"""A large project's similar-items index is built in a child process, and loaded and searched by another, never in
the window's (hnswlib's build and load keep the GIL: the window stalled at 5,000,000 items); the strip fills once
the index is saved."""
import shutil

from oddscope.app import model as project_model
from oddscope.core.project.store import Project
from oddscope.core.workflows.neighbour_index import SearchIndex
from oddscope.core.workflows.retrieval import Neighbours


def test_a_large_project_builds_the_index_in_a_child_process_then_fills_the_strip(qtbot, window, monkeypatch):
    panel, root = window.neighbours, window.model.project.root
    qtbot.waitUntil(lambda: len(panel.neighbour_ids()) > 0, timeout=20_000)  # the analysis's saved index
    shutil.rmtree(root / "index")
    monkeypatch.setattr(project_model, "ASYNC_ITEMS", 100)  # the demo's 150 items are a large project now
    loads = []
    monkeypatch.setattr(SearchIndex, "load", lambda *a: loads.append(a))  # this (the window's) process never loads
    started = []
    window.tasks.started.connect(started.append)
    window.views.set_neighbour_source(root)

    qtbot.waitUntil(lambda: bool(started), timeout=10_000)
    assert [(t.kind, t.title, t.in_process) for t in started] == [
        ("neighbour_index", "Building the similar-items index", True)]
    assert panel.message.text() == "Building the similar-items index\u2026"
    assert window.task_bar.isVisible() and window.task_bar.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: len(panel.neighbour_ids()) > 0, timeout=60_000)
    assert started[0].outcome == "finished" and len(started) == 1
    assert panel.item() == window.model.current and not loads
    monkeypatch.undo()
    with Project.open(root) as project:
        expected = Neighbours(project).of_item(window.model.current, k=len(panel.neighbour_ids()))
    assert panel.neighbour_ids().tolist() == expected["item_id"].tolist()
