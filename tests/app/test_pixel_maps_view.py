"""The anomaly map over the viewer: it shows where the planted defect is, and painted corrections teach it.

The texture collection of :mod:`textures` (a dark square planted in two images,
a bright ring pattern in two others) is opened in the real window; maps are
computed by the real default encoder on the window's background lanes.
"""

import shutil

import numpy as np
import pytest
from PIL import Image
from PySide6 import QtCore, QtGui, QtWidgets
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from textures import SIZE, SQUARE, item_ids
from windows import open_window

from oddscope.app.pixel_maps import LAYER
from oddscope.core.project.store import Project
from oddscope.core.workflows.segmentation import PixelMaps

MAP_TIMEOUT_MS = 120_000  # a first map fits the model: seconds alone, longer on a busy machine


@pytest.fixture(scope="module")
def fitted_dir(texture_dir, tmp_path_factory):
    """A copy of the texture collection whose map model is fitted already (tests that start past the fit)."""
    root = shutil.copytree(texture_dir, tmp_path_factory.mktemp("fitted") / "texture")
    with Project.open(root / "project", writable=True) as project:
        PixelMaps(project).fit()
    return root


def open_texture(qtbot, source, tmp_path):
    root = shutil.copytree(source, tmp_path / "texture")
    window = open_window(qtbot, root / "project")
    with Project.open(root / "project") as project:
        ids = item_ids(project, root)
    return window, root, ids


def show(qtbot, window, item_id: int, with_map: bool = True) -> None:
    """Make ``item_id`` current and wait for its pixels (and, ``with_map``, its anomaly map) on screen."""
    window.model.set_current(item_id)
    qtbot.waitUntil(lambda: window.viewer.item_id == item_id and window.viewer.is_settled(), timeout=10_000)
    if with_map:
        qtbot.waitUntil(lambda: window.pixel_maps.map_item == item_id, timeout=MAP_TIMEOUT_MS)


def drag(viewer, points) -> None:
    """A left-button mouse drag through image pixels ``points`` ((x, y) pairs) in the viewer."""
    view = viewer.graphics
    target = view.viewport()

    def at(x, y):
        return QtCore.QPointF(view.mapFromScene(viewer.view_box.mapViewToScene(QtCore.QPointF(x, y))))

    def send(kind, pos, button, buttons):
        event = QtGui.QMouseEvent(kind, pos, target.mapToGlobal(pos), button, buttons, Qt.NoModifier)
        QtWidgets.QApplication.sendEvent(target, event)

    send(QtCore.QEvent.MouseButtonPress, at(*points[0]), Qt.LeftButton, Qt.LeftButton)
    for x, y in points[1:]:
        send(QtCore.QEvent.MouseMove, at(x, y), Qt.NoButton, Qt.LeftButton)
    send(QtCore.QEvent.MouseButtonRelease, at(*points[-1]), Qt.LeftButton, Qt.NoButton)


def test_the_map_outlines_the_planted_defect_and_m_and_the_threshold_change_it(qtbot, texture_dir, tmp_path):
    window, _root, ids = open_texture(qtbot, texture_dir, tmp_path)
    controls = window.pixel_maps
    assert LAYER in window.viewer.layer_names() and not controls.visible
    show(qtbot, window, ids["square0"], with_map=False)
    QTest.keyClick(window, Qt.Key_M)  # the first map fits the model: a status-bar task with Cancel
    assert controls.visible and window.viewer.layer(LAYER).isVisible()
    qtbot.waitUntil(lambda: window.tasks.running("pixel_fit") is not None or controls.map_item is not None,
                    timeout=30_000)
    if controls.map_item is None:
        assert window.task_bar.label.text().startswith("Fitting the anomaly map model")
        assert controls.strip.status.text().startswith("Fitting")
    qtbot.waitUntil(lambda: controls.map_item == ids["square0"], timeout=MAP_TIMEOUT_MS)
    assert window.errors == []

    values = controls.layer.values  # drawn over the whole image: cell (r, c) covers SIZE / n pixels
    n = values.shape[0]
    peak = np.unravel_index(np.argmax(values), values.shape)
    centre = ((peak[0] + 0.5) * SIZE / n, (peak[1] + 0.5) * SIZE / n)
    assert SQUARE[0].start - 8 <= centre[0] <= SQUARE[0].stop + 8, (centre, SQUARE)
    assert SQUARE[1].start - 8 <= centre[1] <= SQUARE[1].stop + 8, (centre, SQUARE)
    heat = controls.layer.heat
    assert heat.image[peak][3] > 0 and heat.mapRectToParent(heat.boundingRect()) == QtCore.QRectF(0, 0, SIZE, SIZE)
    square = QtCore.QRectF(SQUARE[1].start, SQUARE[0].start, SQUARE[1].stop - SQUARE[1].start,
                           SQUARE[0].stop - SQUARE[0].start)
    outline = controls.layer.contour_rect()
    assert outline.contains(square), (outline, square)
    assert "1 normal pixel in 1,000" in controls.strip.threshold_text.text()

    controls.strip.threshold.setValue(int(np.floor(values.max() * 10)) - 5)  # only the peak stays above
    tight = controls.layer.contour_rect()
    assert tight.width() * tight.height() < 0.5 * outline.width() * outline.height()
    assert tight.contains(QtCore.QPointF(centre[1], centre[0]))
    controls.strip.threshold.setValue(60)
    assert "1 normal pixel in 1,000,000" in controls.strip.threshold_text.text()

    QTest.keyClick(window, Qt.Key_M)
    assert not controls.visible and not window.viewer.layer(LAYER).isVisible()
    QTest.keyClick(window, Qt.Key_M)
    assert window.viewer.layer(LAYER).isVisible() and window.anomaly_map_action.isChecked()
    window.grab().save(str(tmp_path / "overlay.png"))
    window.close()


def test_the_first_fit_can_be_cancelled_and_labelling_goes_on(qtbot, texture_dir, tmp_path):
    window, _root, ids = open_texture(qtbot, texture_dir, tmp_path)
    controls = window.pixel_maps
    show(qtbot, window, ids["square1"], with_map=False)
    controls.set_visible(True)
    qtbot.waitUntil(lambda: window.tasks.running("pixel_fit") is not None, timeout=30_000)
    assert window.task_bar.isVisible() and not window.model.can_label, "the fit borrows the writer lock"
    with qtbot.waitSignal(window.tasks.running("pixel_fit").done, timeout=60_000):
        qtbot.mouseClick(window.task_bar.cancel_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: "press M twice" in controls.strip.status.text(), timeout=10_000)
    assert controls.map_item is None and window.model.can_label and window.errors == []
    window.close()


def test_a_painted_defect_is_saved_as_a_mask_and_undo_puts_the_old_one_back(qtbot, fitted_dir, tmp_path):
    window, root, ids = open_texture(qtbot, fitted_dir, tmp_path)
    controls = window.pixel_maps
    item = ids["normal1"]
    show(qtbot, window, item, with_map=False)
    window.viewer.fit()
    mask_path = window.model.project.layout.defect_mask(item)

    qtbot.mouseClick(controls.strip.paint_defect, Qt.LeftButton)
    assert controls.paint_mode == "defect" and window.viewer.layer("Painted region").isVisible()
    drag(window.viewer, [(40, 40), (60, 40), (80, 40)])  # a horizontal stroke through row 40
    assert controls.paint.mask.any()
    QTest.keyClick(window, Qt.Key_Return)  # Enter applies
    qtbot.waitUntil(lambda: controls.strip.undo_button.isEnabled(), timeout=10_000)
    assert controls.paint_mode is None
    first = np.asarray(Image.open(mask_path)) > 0
    assert first.shape == (SIZE, SIZE) and first[40, 40:81].all() and not first[150:, :].any()
    qtbot.waitUntil(lambda: controls.mask_outline.image_rect().contains(QtCore.QPointF(60, 40)), timeout=10_000)

    controls.set_paint_mode("defect")
    controls.paint_stroke([(180, 180)])
    qtbot.mouseClick(controls.strip.apply_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: len(controls.undo_steps) == 2, timeout=10_000)
    both = np.asarray(Image.open(mask_path)) > 0
    assert both[180, 180] and both[40, 60], "a new paint merges with the mask there"

    qtbot.mouseClick(controls.strip.undo_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: np.array_equal(np.asarray(Image.open(mask_path)) > 0, first), timeout=10_000)
    qtbot.mouseClick(controls.strip.undo_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: not mask_path.exists(), timeout=10_000)
    qtbot.waitUntil(lambda: controls.mask_outline.image_rect().isEmpty(), timeout=10_000)

    controls.set_paint_mode("normal")
    controls.paint_stroke([(100, 100)])
    QTest.keyClick(window, Qt.Key_Escape)  # Esc leaves paint mode and forgets the region
    assert controls.paint_mode is None and not window.viewer.layer("Painted region").isVisible()
    window.close()


def test_painting_a_false_alarm_normal_clears_it_on_another_image(qtbot, fitted_dir, tmp_path):
    window, _root, ids = open_texture(qtbot, fitted_dir, tmp_path)
    controls = window.pixel_maps
    controls.set_visible(True)
    show(qtbot, window, ids["ring1"])
    before = float(controls.layer.values.max())
    assert before > 6, "the unseen ring pattern alarms before the correction"

    show(qtbot, window, ids["ring0"])
    values = controls.layer.values
    n = values.shape[0]
    rows, cols = np.nonzero(values > 1.0)  # the user paints over the whole alarm
    assert len(rows) and not ((rows * SIZE / n > SQUARE[0].start) & (cols * SIZE / n < SQUARE[1].stop)).all()
    qtbot.mouseClick(controls.strip.paint_normal, Qt.LeftButton)
    controls.paint_stroke([((c + 0.5) * SIZE / n, (r + 0.5) * SIZE / n) for r, c in zip(rows, cols)])
    window.grab().save(str(tmp_path / "painting.png"))
    with qtbot.waitSignal(window.tasks.ended, timeout=MAP_TIMEOUT_MS):
        QTest.keyClick(window, Qt.Key_Return)
    assert window.errors == []
    assert "the other images' maps are recomputed as you view them" in window.statusBar().currentMessage()
    qtbot.waitUntil(lambda: controls.map_item == ids["ring0"] and controls.layer.values.max() < 3, timeout=10_000)

    show(qtbot, window, ids["ring1"])
    after = float(controls.layer.values.max())
    show(qtbot, window, ids["normal0"])
    normal = float(controls.layer.values.max())
    assert after < normal + 1.0 < before, (before, after, normal)
    assert window.model.can_label, "the writer lock is back with the window"

    show(qtbot, window, ids["ring1"])
    with qtbot.waitSignal(window.tasks.ended, timeout=MAP_TIMEOUT_MS):
        qtbot.mouseClick(controls.strip.undo_button, Qt.LeftButton)  # the normal region leaves the model
    qtbot.waitUntil(lambda: controls.layer.values.max() > before - 1, timeout=10_000)
    assert "Undid the normal region of ring0.png" in window.statusBar().currentMessage()
    assert not controls.undo_steps and window.errors == []
    window.close()


def test_a_project_whose_maps_are_computed_opens_with_the_map_shown(qtbot, fitted_dir, tmp_path):
    """As the inspection demo does: its maps were computed in bulk, so the window shows them at once."""
    root = shutil.copytree(fitted_dir, tmp_path / "computed")
    with Project.open(root / "project", writable=True) as project:
        PixelMaps(project).compute()
    window = open_window(qtbot, root / "project")
    assert window.pixel_maps.visible and window.viewer.layer(LAYER).isVisible()
    qtbot.waitUntil(lambda: window.pixel_maps.map_item == window.viewer.item_id, timeout=MAP_TIMEOUT_MS)
