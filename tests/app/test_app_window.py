"""The main window on the indexed demo project, driven by real keys, clicks and drags (offscreen)."""
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PySide6 import QtCore, QtGui, QtWidgets
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest
from windows import open_window

from oddscope.app import dialogs
from oddscope.app.viewer import AS_ENCODED
from oddscope.app.window import MainWindow
from oddscope.core.project.store import Project


def _stored_label(root, item_id):
    with Project.open(root) as project:  # read-only: the window holds the writer lock
        return project.label(item_id)


def _cell(window, item_id):
    index = window.ranking.model.index_of_item(item_id)
    return window.ranking.model.cell_at(index), index.data(Qt.ToolTipRole)


def _map_drag(view, start_xy, end_xy):
    """A Shift-drag (rectangle selection) on the map with real mouse events."""
    viewport = view.plot_widget.viewport()

    def pos(xy):
        x, y = view.data_to_widget(np.asarray(xy, float))
        return viewport.mapFrom(view, QPoint(round(x), round(y)))

    points = [pos(start_xy)] + [pos(np.add(start_xy, np.subtract(end_xy, start_xy) * t)) for t in (0.3, 0.7, 1)]
    QTest.mousePress(viewport, Qt.LeftButton, Qt.ShiftModifier, points[0])
    for p in points[1:]:
        QTest.qWait(15)  # pyqtgraph ignores moves closer than 10 ms apart
        QtCore.QCoreApplication.sendEvent(viewport, QtGui.QMouseEvent(
            QtCore.QEvent.MouseMove, QtCore.QPointF(p), QtCore.QPointF(viewport.mapToGlobal(p)),
            Qt.NoButton, Qt.LeftButton, Qt.ShiftModifier))
    QTest.mouseRelease(viewport, Qt.LeftButton, Qt.ShiftModifier, points[-1])


def test_opening_fills_every_view(window, demo_project, monkeypatch):
    model = window.model
    first = int(window.ranking.visible_ids()[0])
    assert window.ranking.model.count == len(model.table) == 150
    assert model.table["rank"].iloc[0] == 1 and model.table.index[0] == first  # best-ranked first
    assert model.current == first == window.viewer.item_id
    assert window.map_view.point_count() == len(model.map_ids) > 100
    assert window.map_view.current() == model.map_position(first)
    assert window.windowTitle().startswith(demo_project.name)
    encoder = window.encoder_label.toolTip()
    assert "efficientnet-lite0" in encoder and "weights" in encoder
    assert window.items_label.text() == "150 images"
    fields = window.viewer.fields()
    assert fields["Rank"] == "#1" and any(k.startswith("score: knn") for k in fields)
    assert window.neighbours.item() == first

    about = {}
    monkeypatch.setattr(QtWidgets.QMessageBox, "about", lambda parent, title, text: about.update(text=text))
    window.about_action.trigger()
    assert "efficientnet-lite0" in about["text"] and "weights" in about["text"]


def _map_cover(window) -> float:
    """The points' bounding box as a share of the visible map range, along its fuller axis."""
    x0, x1, y0, y1 = window.map_view.view_range()
    xy = window.model.map_xy()
    return max(np.ptp(xy[:, 0]) / (x1 - x0), np.ptp(xy[:, 1]) / (y1 - y0))


def test_the_map_fills_its_panel_when_a_project_opens_and_when_the_window_grows(qtbot, window):
    qtbot.wait(50)  # any layout still pending settles, as a user would see it
    assert _map_cover(window) > 0.6
    window.resize(window.width() + 600, window.height() + 300)
    qtbot.wait(50)
    assert _map_cover(window) > 0.6


def test_a_large_table_is_read_in_a_child_process(qtbot, demo_project, monkeypatch):
    from oddscope.app import session

    monkeypatch.setattr(session, "TABLE_IN_PROCESS_ITEMS", 0)  # every project counts as large
    started = []
    window = MainWindow()
    qtbot.addWidget(window)
    window.tasks.started.connect(started.append)
    with qtbot.waitSignal(window.model.loaded, timeout=60_000):
        assert window.open_project(demo_project)
    assert started[0].kind == "load" and started[0].in_process
    with Project.open(demo_project) as project:
        assert len(window.model.table) == project.n_items
    assert window.model.project.writable  # the window, not the child, holds the writer lock
    window.close()


def test_the_window_process_never_imports_torch():
    """Importing torch holds the GIL for tenths of a second: it would freeze the window."""
    code = ("import sys, oddscope.app.main, oddscope.app.window, oddscope.app.dialogs, oddscope.core.workflows.retrieval, "
            "oddscope.core.models.detectors, oddscope.core.workflows.active_session, oddscope.core.project.table; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


OPEN_AND_REPORT_TORCH = """
import sys
from oddscope.app.main import run_app

code = run_app(sys.argv[1], screenshot=sys.argv[2])  # opens the project, waits until every view is filled
print("torch imported" if "torch" in sys.modules else "no torch", flush=True)
sys.exit(code)
"""


def test_opening_a_project_in_the_app_never_imports_torch(demo_project, tmp_path):
    """Not only the modules: a real window process opens, loads and paints a project (offscreen)."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", OPEN_AND_REPORT_TORCH, demo_project, tmp_path / "shot.png"],
                          capture_output=True, text=True, env=env, timeout=180)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "shot.png").stat().st_size > 0  # the window did open the project
    assert done.stdout.strip().splitlines()[-1] == "no torch"


def _gap_near(values, target):
    """A coordinate near ``target`` in the widest gap between points: a drag ends on whole pixels, so a
    rectangle edge must not pass within a pixel of a point."""
    ordered = np.sort(values)
    centres, gaps = (ordered[:-1] + ordered[1:]) / 2, np.diff(ordered)
    near = np.abs(centres - target) < 0.15 * (ordered[-1] - ordered[0])
    return centres[np.argmax(np.where(near, gaps, -1))]


def test_map_selection_filters_the_ranking(qtbot, window):
    view, model = window.map_view, window.model
    xy = model.map_xy()
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    mid = np.array([_gap_near(xy[:, axis], (lo[axis] + hi[axis]) / 2) for axis in (0, 1)])
    with qtbot.waitSignal(model.selection_changed, timeout=5_000):
        _map_drag(view, lo - 0.01, mid)  # about the lower-left quarter of the map
    inside = (xy[:, 0] <= mid[0]) & (xy[:, 1] <= mid[1])
    expected = set(model.map_ids[inside].tolist())
    assert 0 < len(expected) < 150
    assert set(model.selection.tolist()) == expected
    assert window.ranking.selection_toggle.isChecked()
    assert set(window.ranking.visible_ids().tolist()) == expected  # the grid shows the selection only
    assert set(view.selection().tolist()) == set(np.flatnonzero(inside).tolist())

    view.clear_selection()
    assert model.selection is None
    assert window.ranking.model.count == 150


def test_score_key_labels_advances_and_undo_reverts(qtbot, window, demo_project):
    model, grid = window.model, window.ranking.grid
    first, second = (int(i) for i in window.ranking.visible_ids()[:2])
    grid.setFocus()
    window.colour_combo.setCurrentIndex(window.colour_combo.findData("label_score"))

    qtbot.keyClick(grid, Qt.Key_3)
    assert _stored_label(demo_project, first) == (3, [])
    cell, tooltip = _cell(window, first)
    assert cell.label_score == 3 and "label 3" in tooltip  # the grid badge
    assert model.current == second and window.ranking.current_item() == second  # advanced
    pos = model.map_position(first)
    values, kind, _ = model.color_values("label_score")
    assert kind == "numeric" and values[pos] == 3
    assert window.map_view._layers.colouring.values01[pos] == pytest.approx(3 / 5)  # what the map draws (scale 0-5)
    assert window.labelled_label.text() == "1 labelled"

    qtbot.keyClick(grid, Qt.Key_Z, Qt.ControlModifier)
    assert _stored_label(demo_project, first) == (None, [])
    assert model.current == first  # back on the undone image
    assert np.isnan(_cell(window, first)[0].label_score)
    assert np.isnan(model.color_values("label_score")[0][pos])
    assert window.viewer.item_id == first and "unlabelled" in window.viewer.label_badge.text()

    qtbot.keyClick(grid, Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier)  # redo
    assert _stored_label(demo_project, first) == (3, [])
    assert "3" in window.viewer.label_badge.text()


def test_n_and_p_step_through_the_ranking_but_p_on_the_map_means_pan(qtbot, window):
    """N/P move the current image; while the map has focus its own keys win: P = pan mode, F = fit."""
    model, grid, view = window.model, window.ranking.grid, window.map_view
    first, second, third = (int(i) for i in window.ranking.visible_ids()[:3])
    grid.setFocus()
    qtbot.waitUntil(grid.hasFocus, timeout=2_000)
    model.set_current(first)
    qtbot.keyClick(grid, Qt.Key_N)
    qtbot.keyClick(grid, Qt.Key_N)
    assert model.current == third and window.ranking.current_item() == third
    qtbot.keyClick(grid, Qt.Key_P)
    assert model.current == second and window.viewer.item_id in (second, third)  # the viewer follows
    qtbot.waitUntil(lambda: window.viewer.item_id == second, timeout=10_000)

    viewport = view.plot_widget.viewport()
    viewport.setFocus()
    qtbot.waitUntil(viewport.hasFocus, timeout=2_000)
    QTest.keyClick(viewport, Qt.Key_R)
    assert view.mode() == "rect"
    QTest.keyClick(viewport, Qt.Key_P)
    assert view.mode() == "pan" and model.current == second  # pan mode, not "previous image"
    full = view.view_range()
    view.set_view_range(full[0], full[0] + (full[1] - full[0]) / 10, full[2], full[2] + (full[3] - full[2]) / 10)
    assert view.view_range()[1] < full[1]
    QTest.keyClick(viewport, Qt.Key_F)
    np.testing.assert_allclose(view.view_range(), full, rtol=0.05, atol=1e-3)  # every point in view again
    grid.setFocus()
    qtbot.waitUntil(grid.hasFocus, timeout=2_000)
    qtbot.keyClick(grid, Qt.Key_P)  # away from the map, P is "previous image" again
    assert model.current == first


def test_tag_entry_completes_existing_tags(qtbot, window, demo_project):
    model = window.model
    other = int(window.ranking.visible_ids()[5])
    model.add_tag(other, "ring galaxy")
    current = model.current
    seen = {}

    def fill_dialog():
        dialog = QtWidgets.QApplication.activeModalWidget()
        seen["completions"] = dialog.edit.completer().model().stringList()
        QTest.keyClicks(dialog.edit, "merger")
        QTest.keyClick(dialog.edit, Qt.Key_Return)

    QtCore.QTimer.singleShot(200, fill_dialog)
    qtbot.keyClick(window.ranking.grid, Qt.Key_T)
    assert seen["completions"] == ["ring galaxy"]
    assert _stored_label(demo_project, current) == (None, ["merger"])
    assert _cell(window, current)[0].tags == ("merger",)
    assert "#merger" in window.viewer.label_badge.text()


def test_walk_to_a_neighbour_and_more_like_this(qtbot, window):
    panel, model = window.neighbours, window.model
    start = model.current
    qtbot.waitUntil(lambda: len(panel.neighbour_ids()) > 0, timeout=20_000)
    target = int(panel.neighbour_ids()[0])
    index = panel.model.index(0)
    qtbot.mouseClick(panel.strip.viewport(), Qt.LeftButton, pos=panel.strip.visualRect(index).center())
    assert model.current == target != start
    qtbot.waitUntil(lambda: window.viewer.item_id == target, timeout=5_000)
    assert window.map_view.current() == model.map_position(target)
    qtbot.waitUntil(lambda: panel.item() == target and panel.more_button.isEnabled(), timeout=20_000)

    window.more_like_this_action.trigger()  # Shift+M
    expected = {target, *panel.neighbour_ids().tolist()}
    assert set(model.selection.tolist()) == expected
    assert set(window.ranking.visible_ids().tolist()) == expected
    assert len(window.map_view.selection()) == len(expected)


def test_ranking_choice_resorts_the_grid_and_recolours_the_map(window, demo_project):
    iforest = window.model.project.load_array("score_iforest")
    window.ranking_combo.setCurrentText("iforest")
    assert int(window.ranking.visible_ids()[0]) == int(np.nanargmax(iforest))
    assert window.colour_combo.currentText() == "anomaly score (iforest)"
    values, _, _ = window.model.color_values("anomaly_score")
    np.testing.assert_allclose(values, iforest[window.model.map_ids])
    assert window.viewer.fields()["Anomaly score (iforest)"]
    with Project.open(demo_project) as project:
        assert project.get_setting("ranking") == "iforest"


def test_hovering_the_map_shows_a_thumbnail(qtbot, window):
    view, model = window.map_view, window.model
    qtbot.waitUntil(window.is_ready, timeout=20_000)  # thumbnails of the first cells are loaded
    position = model.map_position(model.current)
    x, y = view.data_to_widget(model.map_xy()[position])
    viewport = view.plot_widget.viewport()
    with qtbot.waitSignal(view.hovered, timeout=5_000) as blocker:
        qtbot.mouseMove(viewport, viewport.mapFrom(view, QPoint(round(x), round(y))))
    hovered = int(model.map_ids[blocker.args[0]])
    qtbot.waitUntil(lambda: window.thumbs.get(hovered, model.row(hovered)["path"]) is not None, timeout=10_000)
    card = window.views.map_tooltip(blocker.args[0])
    assert isinstance(card, QtGui.QPixmap) and card.height() > window.thumbs.size  # thumbnail + caption
    assert view.popup.isVisible()


def test_import_labels_reports_bad_lines(qtbot, window, demo_project, tmp_path, monkeypatch):
    table = window.model.table
    good = int(table.index[0])
    labels = tmp_path / "labels.csv"
    labels.write_text(f"path,score,tags\n{table.at[good, 'path']},4,ring\n/nowhere/x.png,2,\n"
                      f"{table.at[int(table.index[1]), 'path']},9,\n", encoding="utf-8")
    monkeypatch.setattr(QtWidgets.QFileDialog, "getOpenFileName", lambda *a, **k: (str(labels), ""))
    reports = {}
    monkeypatch.setattr(dialogs, "show_report", lambda parent, title, message, details="": reports.update(
        message=message, details=details))
    window.import_action.trigger()
    qtbot.waitUntil(lambda: "message" in reports, timeout=10_000)
    assert reports["message"].startswith("Applied 1 label")
    assert "line 3: unknown path" in reports["details"] and "line 4: score must be" in reports["details"]
    assert _stored_label(demo_project, good) == (4, ["ring"])
    cell, _ = _cell(window, good)
    assert cell.label_score == 4 and cell.tags == ("ring",)
    assert window.labelled_label.text() == "1 labelled"
    qtbot.waitUntil(window.score_actions[0].isEnabled, timeout=5_000)  # labelling is back on


def test_settings_dialog_round_trips_and_persists(qtbot):
    dialog = dialogs.SettingsDialog(dialogs.analysis_settings())
    qtbot.addWidget(dialog)
    assert dialog.values()["detectors"] is None  # the standard set
    dialog.k.setValue(9)
    dialog.metric.setCurrentText("l2")
    for i in range(dialog.detectors.count()):
        item = dialog.detectors.item(i)
        item.setCheckState(Qt.Checked if item.text() in ("knn", "lof") else Qt.Unchecked)
    dialogs.save_analysis_settings(dialog.values())
    stored = dialogs.analysis_settings()
    assert stored["k"] == 9 and stored["metric"] == "l2" and stored["detectors"] == ["knn", "lof"]


def test_shortcut_sheet_lists_the_labelling_keys(qtbot):
    window = MainWindow()
    qtbot.addWidget(window)
    rows = dict((action, keys) for keys, action in window.shortcut_rows())
    assert rows["Score 3"] == "3" and rows["Tag"] == "T" and rows["Undo label"] == "Ctrl+Z"
    assert rows["Next image"] == "N" and rows["Previous image"] == "P"
    assert rows["Anomaly map"] == "M" and rows["More like this"] == "Shift+M"
    assert window.shortcuts_action.shortcut().toString() == "F1"


def test_export_csv_through_the_menu(qtbot, window, demo_project, tmp_path, monkeypatch):
    first = window.model.current
    qtbot.keyClick(window.ranking.grid, Qt.Key_5)
    out = tmp_path / "export" / "table.csv"
    out.parent.mkdir()
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName",
                        lambda *a, **k: (str(out.with_suffix("")), "CSV (*.csv)"))
    window.export_action.trigger()
    qtbot.waitUntil(lambda: window.tasks.running("export") is None and out.exists(), timeout=20_000)
    df = pd.read_csv(out)
    assert len(df) == 150
    assert {"item_id", "path", "rank", "anomaly_score", "label_score", "umap_x"} <= set(df.columns)
    assert df.set_index("item_id").at[first, "label_score"] == 5
    assert df["rank"].iloc[0] == 1


def test_locked_project_opens_read_only_with_a_banner(qtbot, demo_project, monkeypatch):
    monkeypatch.setattr(dialogs, "ask_yes_no", lambda *a: True)
    with Project.open(demo_project, writable=True):  # "another process" writes it
        window = open_window(qtbot, demo_project)
        assert window.model.read_only
        assert window.banner.isVisible() and "Read-only" in window.banner.text()
        assert "read-only" in window.windowTitle()
        assert not window.score_actions[3].isEnabled()
        current = window.model.current
        qtbot.keyClick(window.ranking.grid, Qt.Key_3)
        assert window.model.current == current  # nothing happened
        assert _stored_label(demo_project, current) == (None, [])
        with qtbot.waitSignal(window.learner.updated, timeout=60_000):  # re-ranking only reads: it works here too
            window.ranking_combo.setCurrentText("oddscope")
        assert window.statusBar().currentMessage().startswith("Re-ranked with oddscope")
        window.close()
    with Project.open(demo_project) as project:
        assert project.load_array("rank_oddscope") is None  # ... and saves nothing


def test_layout_and_recent_projects_persist(qtbot, demo_project):
    window = open_window(qtbot, demo_project)
    window.resize(790, 760)  # inside the 800 x 800 offscreen screen, so the geometry restores as it was
    qtbot.wait(50)
    window.columns.setSizes([200, 300, 260])
    sizes = window.columns.sizes()
    window.close()
    again = MainWindow()
    qtbot.addWidget(again)
    again.show()
    qtbot.waitExposed(again)
    assert again.size() == window.size()
    assert again.columns.sizes() == sizes
    assert again.last_project() == str(demo_project.resolve())
    assert again.recent_projects() == [str(demo_project.resolve())]


def test_unexpected_errors_are_shown_in_a_dialog(qtbot, monkeypatch):
    from oddscope.app import main

    shown = {}
    monkeypatch.setattr(dialogs, "show_error", lambda parent, title, message, details="": shown.update(
        title=title, message=message, details=details))
    try:
        raise RuntimeError("disk full while saving thumbnails")
    except RuntimeError:
        main._excepthook(*sys.exc_info())
    assert "disk full while saving thumbnails" in shown["message"]
    assert "Traceback" in shown["details"] and "RuntimeError" in shown["details"]


def test_screenshot_mode_renders_the_loaded_window(demo_project, tmp_path, monkeypatch):
    from oddscope.app.main import run_app

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # run_app installs its own
    out = tmp_path / "window.png"
    assert run_app(demo_project, screenshot=out) == 0
    image = QtGui.QImage(str(out))
    assert image.width() >= 1200 and image.height() >= 800
    # not a blank frame: the grid's thumbnails and the map put many different colours on screen
    sample = {image.pixel(x, y) for x in range(0, image.width(), 23) for y in range(0, image.height(), 23)}
    assert len(sample) > 200


def test_screenshot_mode_fails_readably_without_a_dialog(tmp_path, monkeypatch, capsys):
    from oddscope.app.main import run_app

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    assert run_app(tmp_path, screenshot=tmp_path / "x.png") == 1
    assert "not an Oddscope project" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_a_project_with_science_steps_shows_them_and_preselects_their_stretch(qtbot, demo_project):
    with Project.open(demo_project, writable=True) as project:
        record = project.get_setting("encoder")
        project.set_setting("encoder", {**record, "preprocess": "crop=0.5,stretch=asinh"})
    win = open_window(qtbot, demo_project)
    assert "preprocess: crop=0.5,stretch=asinh" in win.encoder_label.toolTip()
    assert win.viewer.stretch == "asinh" and win.viewer.stretch_combo.findText(AS_ENCODED) >= 0
    win.close()
