"""The Guidance dock: it lists the feature spaces, adds one through its dialog in the background, ranks in one,
removes one, and says why an option is off."""
import os
import shutil
import time

import numpy as np
import pytest
from PySide6 import QtCore, QtWidgets
from windows import open_window

from oddscope.app import dialogs
from oddscope.app.guidance_dialog import AddSpaceDialog
from oddscope.core.project.store import Project
from oddscope.core.workflows.guidance import add_space
from oddscope.core.workflows.spaces import space_features

SPACE = "no-pose"
SCREENSHOT = os.environ.get("ODDSCOPE_GUIDANCE_SHOT", "")  # set to save the panel's screenshot there


@pytest.fixture(scope="module")
def guided_dir(demo_dir, tmp_path_factory):
    """The demo with tags pose:left/right (plain in the features: the side of the median along their first
    principal axis), cam:a/b on its first 60 items, and the space no-pose (once)."""
    root = tmp_path_factory.mktemp("guided") / "demo"
    shutil.copytree(demo_dir, root)
    with Project.open(root / "project", writable=True) as project:
        ids = project.load_array("test_ids")
        X = space_features(project, ids)
        X = X - X.mean(axis=0)
        side = X @ np.linalg.svd(X, full_matrices=False)[2][0]
        left = side > np.median(side)
        cams = [[f"cam:{'ab'[n % 3 == 0]}"] if n < 60 else [] for n in range(len(ids))]
        project.set_labels([(i, ..., [f"pose:{'left' if left[n] else 'right'}"] + cams[n])
                            for n, i in enumerate(ids)])
        add_space(project, SPACE, "pose")
    return root


@pytest.fixture
def guided_window(qtbot, guided_dir, tmp_path):
    shutil.copytree(guided_dir, tmp_path / "demo")
    window = open_window(qtbot, tmp_path / "demo" / "project")
    window.guidance_action.trigger()
    yield window
    window.close()


def rows(window):
    return window.guidance.panel.spaces()


def test_the_panel_lists_raw_first_then_the_spaces_with_their_probes(guided_window):
    window = guided_window
    assert window.guidance.dock.isVisible()
    assert rows(window) == [None, SPACE]
    name, what, probe = window.guidance.panel.list.item(1).text().split("\n")
    assert name == SPACE and what.startswith("removes pose (tags) · LEACE")
    linear = probe.split("linear ")[1].split(" ·")[0]
    before, after = map(float, linear.split(" → "))
    chance = float(probe.split("chance ")[1])
    assert before > chance + 0.2 and after < chance + 0.1  # the pose is plain to see, then gone
    assert "goal is chance" in window.guidance.panel.list.item(1).toolTip()
    assert window.guidance.space_label.text() == "Space: raw"


def test_add_through_the_dialog_runs_in_a_lane_then_use_and_remove(qtbot, guided_window, monkeypatch):
    window, guidance = guided_window, guided_window.guidance
    dialog = guidance.ask_add()
    dialog.attribute_combo.setCurrentIndex(dialog.attribute_combo.findData("cam"))
    assert dialog.name_edit.text() == "no-cam"
    ticks = []
    timer = QtCore.QTimer(interval=20, timeout=lambda: ticks.append(time.perf_counter()))
    timer.start()
    dialog.buttons.button(QtWidgets.QDialogButtonBox.Ok).click()
    assert window.tasks.running("guidance") is not None  # a status-bar task, not the GUI thread
    assert not guidance.panel.add_button.isEnabled() and not window.model.can_label
    qtbot.waitUntil(lambda: "no-cam" in rows(window) and not window.tasks.running(), timeout=120_000)
    timer.stop()
    assert max(np.diff(ticks)) < 1.0  # the window kept painting while the space was fitted
    assert window.model.can_label and "knn@no-cam" in [window.ranking_combo.itemText(i)
                                                       for i in range(window.ranking_combo.count())]

    guidance.panel.select(SPACE)
    guidance.panel.use_button.click()
    assert window.model.ranking() == f"knn@{SPACE}" and window.ranking_combo.currentText() == f"knn@{SPACE}"
    with Project.open(window.model.project.root) as project:
        guided = project.load_array(f"score_knn@{SPACE}")
    assert int(window.ranking.visible_ids()[0]) == int(np.nanargmax(guided))
    assert window.views.neighbour_space == SPACE and guidance.space_label.text() == f"Space: {SPACE}"
    assert guidance.panel.list.item(1).font().bold() and guidance.panel.selected() == SPACE
    qtbot.waitUntil(lambda: len(window.neighbours.neighbour_ids()) > 0, timeout=30_000)

    guidance.use_space(None)
    assert window.model.ranking() == "knn" and window.views.neighbour_space is None

    asked = []
    monkeypatch.setattr(dialogs, "ask_yes_no", lambda _parent, _title, text: asked.append(text) or True)
    guidance.panel.select("no-cam")
    guidance.panel.remove_button.click()
    assert "final" in asked[0]
    qtbot.waitUntil(lambda: rows(window) == [None, SPACE] and not window.tasks.running(), timeout=60_000)
    assert "knn@no-cam" not in [window.ranking_combo.itemText(i) for i in range(window.ranking_combo.count())]


def test_options_that_cannot_be_used_are_disabled_with_the_reason(guided_window):
    dialog = guided_window.guidance.ask_add()
    assert not dialog.relevant_radio.isEnabled() and "needs images you scored 4-5" in dialog.relevant_radio.text()
    methods = dialog.method_combo.model()
    reasons = {methods.item(r).text(): methods.item(r).isEnabled() for r in range(methods.rowCount())}
    assert reasons == {"LEACE (linear concept erasure)": True, "Red PANDA (non-linear head)": True}
    assert not dialog.words_radio.isEnabled() and "needs a CLIP encoder" in dialog.words_radio.text()
    assert [dialog.attribute_combo.itemData(i) for i in range(dialog.attribute_combo.count())] == ["cam", "pose"]
    dialog.name_edit.setText(SPACE)
    dialog.name_edit.textEdited.emit(SPACE)
    assert not dialog.buttons.button(QtWidgets.QDialogButtonBox.Ok).isEnabled() and "exists" in dialog.reason.text()
    dialog.reject()


def test_the_dialog_asks_for_the_nonlinear_head_or_for_words_on_a_clip_project(qtbot):
    dialog = AddSpaceDialog([("cam", "metadata: cam")], "", "", [])
    qtbot.addWidget(dialog)
    dialog.method_combo.setCurrentIndex(dialog.method_combo.findData("nonlinear"))
    assert dialog.values() == {"name": "no-cam", "kind": "nuisance", "attribute": "cam", "method": "nonlinear"}
    assert dialog.words_radio.isEnabled() and not dialog.nuisance_words.isEnabled()
    dialog.words_radio.setChecked(True)
    ok = dialog.buttons.button(QtWidgets.QDialogButtonBox.Ok)
    assert dialog.nuisance_words.isEnabled() and not ok.isEnabled() and "in words" in dialog.reason.text()
    dialog.nuisance_words.setText("background colour; rotation ;")
    dialog.relevant_words.setText("shape of the object")
    assert ok.isEnabled() and not dialog.attribute_combo.isEnabled()
    assert dialog.values() == {"name": "words", "kind": "words", "attribute": None, "method": "clip-prompts",
                               "nuisance_words": ["background colour", "rotation"],
                               "relevant_words": ["shape of the object"]}


def test_the_dock_toggles_with_g_and_is_remembered(qtbot, guided_window, tmp_path):
    window = guided_window
    assert window.guidance_action.shortcut().toString() == "G"
    assert ("G", "Guidance panel") in window.shortcut_rows()
    root = window.model.project.root
    window.close()  # saved open
    again = open_window(qtbot, root)
    try:
        assert again.guidance.dock.isVisible() and again.guidance.panel.spaces() == [None, SPACE]
        again.guidance_action.trigger()
        assert not again.guidance.dock.isVisible()
    finally:
        again.close()


def test_screenshot_of_the_panel(qtbot, guided_window, tmp_path):
    window = guided_window
    window.guidance.use_space(SPACE)
    qtbot.wait(50)
    assert window.guidance.dock.width() >= 400  # every line of a space fits
    path = SCREENSHOT or str(tmp_path / "guidance_panel.png")
    assert window.guidance.dock.grab().save(path)


def test_cancel_in_the_status_bar_leaves_no_space_behind(qtbot, guided_window):
    window = guided_window
    task = window.guidance.add_space("no-cam", "cam", "nuisance")
    assert window.task_bar.isVisible()
    with qtbot.waitSignal(task.done, timeout=60_000) as outcome:
        window.task_bar.cancel_button.click()
    assert outcome.args == ["cancelled"]
    qtbot.waitUntil(lambda: not window.tasks.running() and window.model.can_label, timeout=30_000)
    assert window.guidance.panel.spaces() == [None, SPACE]
    with Project.open(window.model.project.root) as project:
        assert not [a for a in project.array_names() if a.endswith("@no-cam")]


def test_relevant_only_is_offered_once_there_are_high_and_low_scores(guided_window):
    window = guided_window
    ids = window.model.table.index[:4]
    for item_id, score in zip(ids, (5, 4, 1, 0)):
        window.model.set_label(int(item_id), score)
    dialog = window.guidance.ask_add()
    assert dialog.relevant_radio.isEnabled() and dialog.relevant_radio.toolTip() == ""
    dialog.relevant_radio.setChecked(True)
    assert dialog.values() == {"name": "relevant", "kind": "relevant", "attribute": None, "method": "leace"}
    assert not dialog.attribute_combo.isEnabled()
    dialog.reject()
