"""ImageViewer: decoding off the GUI thread, stretches from the raw values, fit, layers, errors."""
import numpy as np
import pyqtgraph as pg
import pytest
from astropy.io import fits
from PIL import Image
from PySide6 import QtCore
from PySide6.QtCore import Qt

from oddscope.app.viewer import AS_ENCODED, ImageViewer
from oddscope.core.data.science import NO_STEPS, ScienceSteps


@pytest.fixture
def viewer(qtbot):
    widget = ImageViewer()
    widget.resize(600, 700)
    qtbot.addWidget(widget)
    widget.show()
    return widget


def _show(qtbot, viewer, item_id, path, **kw):
    with qtbot.waitSignal(viewer.image_shown, timeout=10_000) as blocker:
        viewer.show_item(item_id, path, **kw)
    assert blocker.args == [item_id]


def test_uint16_image_stretches_and_contrast_restretches(qtbot, viewer, tmp_path):
    ramp = np.tile(np.linspace(0, 60_000, 128), (96, 1)).astype(np.uint16)
    path = tmp_path / "ramp.png"
    Image.fromarray(ramp).save(path)
    _show(qtbot, viewer, 7, path, fields=[("score_knn", "0.91"), ("survey", "A")], label_text="★ 3")

    linear = viewer.image().copy()
    assert linear.shape == (96, 128, 3) and linear.dtype == np.uint8
    assert viewer.fields() == {"score_knn": "0.91", "survey": "A"}
    assert viewer.label_badge.text() == "★ 3"

    with qtbot.waitSignal(viewer.image_shown, timeout=10_000):
        viewer.set_stretch("log")
    log = viewer.image()
    # log lifts the dark end: a pixel a tenth of the way up is much brighter than under linear
    assert log[0, 13, 0] > linear[0, 13, 0] + 40

    with qtbot.waitSignal(viewer.image_shown, timeout=10_000):
        viewer.contrast.setValue(300)  # debounced re-stretch from the cached raw array
    assert not np.array_equal(viewer.image(), log)
    assert viewer.contrast_label.text() == "300 %"


def test_fits_float_image_and_zscale(qtbot, viewer, tmp_path):
    rng = np.random.default_rng(0)
    data = rng.normal(100.0, 5.0, (64, 80)).astype(np.float32)
    data[30:34, 40:44] = 5000.0  # a bright star that a linear percentile stretch would saturate around
    path = tmp_path / "field.fits"
    fits.PrimaryHDU(data).writeto(path)
    viewer.set_stretch("zscale")
    _show(qtbot, viewer, 1, path)
    shown = viewer.image()
    assert shown.shape == (64, 80, 3)
    assert shown[:, :, 0].std() > 20  # the noise is visible, not crushed to one grey


def test_zoom_then_fit_by_double_click_and_key(qtbot, viewer, tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(np.zeros((50, 200, 3), np.uint8)).save(path)
    _show(qtbot, viewer, 0, path)
    box = viewer.view_box
    (x0, x1), _ = box.viewRange()
    assert x0 <= 0 and x1 >= 200  # fitted on first show

    box.scaleBy((0.25, 0.25))
    (x0, x1), _ = box.viewRange()
    assert x1 - x0 < 100

    centre = viewer.graphics.mapFromScene(box.sceneBoundingRect().center())
    port = viewer.graphics.viewport()
    qtbot.mouseClick(port, Qt.LeftButton, pos=centre)  # a real double-click: click, double-click, release
    qtbot.mouseDClick(port, Qt.LeftButton, pos=centre)
    qtbot.mouseRelease(port, Qt.LeftButton, pos=centre)
    (x0, x1), _ = box.viewRange()
    assert x0 <= 0 and x1 >= 200

    box.scaleBy((0.25, 0.25))
    viewer.graphics.setFocus()
    qtbot.keyClick(viewer.graphics, Qt.Key_F)
    (x0, x1), _ = box.viewRange()
    assert x0 <= 0 and x1 >= 200


def test_layers_can_be_added_and_toggled(qtbot, viewer, tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(np.full((40, 40, 3), 90, np.uint8)).save(path)
    _show(qtbot, viewer, 0, path)
    heat = pg.ImageItem(np.random.default_rng(0).random((40, 40)), axisOrder="row-major", opacity=0.5)
    viewer.add_layer("heat map", heat)
    assert viewer.layer_names() == ["heat map"]
    assert heat.isVisible() and heat.zValue() > viewer.image_item.zValue()

    viewer.set_layer_visible("heat map", False)
    assert not heat.isVisible()
    menu_action = viewer.layers_button.menu().actions()[0]
    assert not menu_action.isChecked()
    menu_action.trigger()  # the Layers menu toggles it back on
    assert heat.isVisible()
    with pytest.raises(KeyError):
        viewer.set_layer_visible("nope", True)


def test_unreadable_file_shows_reason_and_stale_results_are_dropped(qtbot, viewer, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png at all")
    viewer.show_item(3, bad)
    qtbot.waitUntil(lambda: viewer.stack.currentWidget() is viewer.message, timeout=10_000)
    assert "broken.png" in viewer.message.text()

    good = tmp_path / "good.png"
    Image.fromarray(np.full((20, 30, 3), 200, np.uint8)).save(good)
    other = tmp_path / "other.png"
    Image.fromarray(np.full((10, 10, 3), 10, np.uint8)).save(other)
    shown = []
    viewer.image_shown.connect(shown.append)
    viewer.show_item(4, good)
    viewer.show_item(5, other)  # supersedes item 4 before it decoded
    qtbot.waitUntil(lambda: 5 in shown, timeout=10_000)
    qtbot.wait(100)
    assert shown == [5]
    assert viewer.image().shape == (10, 10, 3)


def test_field_table_value_column_fills_the_table_and_long_values_elide(qtbot, viewer):
    long_name = "metadata: " + "observation_programme_identifier_" * 3
    long_value = "a long free-text note about this image, " * 6
    viewer.set_fields([("Rank", "#1"), (long_name, long_value)])
    qtbot.wait(20)
    table = viewer.info
    header = table.horizontalHeader()
    viewport = table.viewport().width()
    assert header.sectionSize(0) + header.sectionSize(1) == viewport  # nothing hidden to the right
    assert header.sectionSize(1) >= viewport // 2  # a long field name leaves the value room
    assert not table.wordWrap() and table.textElideMode() == QtCore.Qt.ElideRight  # "..." not a clipped 2nd line
    assert table.item(1, 1).toolTip() == long_value
    assert table.item(1, 0).toolTip() == long_name


def test_the_projects_science_steps_show_the_image_as_the_encoder_saw_it(qtbot, viewer, tmp_path):
    """The recorded stretch is preselected; ``as encoded`` shows the steps' crop where it lies in the image."""
    data = np.random.default_rng(3).normal(100.0, 5.0, (60, 80)).astype(np.float32)
    data[28:32, 38:42] = 4000.0
    path = tmp_path / "cutout.fits"
    fits.PrimaryHDU(data).writeto(path)
    steps = ScienceSteps.parse("background,crop=0.5,stretch=log")
    viewer.set_encoder_steps(steps)
    assert viewer.stretch == "log"
    _show(qtbot, viewer, 1, path)
    assert viewer.image().shape == (60, 80, 3)  # a stretch alone still shows the whole image

    with qtbot.waitSignal(viewer.image_shown, timeout=10_000):
        viewer.set_stretch(AS_ENCODED)
    assert np.array_equal(viewer.image(), steps.apply(data))  # the pixels the encoder's resize received
    placed = viewer.image_item.mapRectToParent(viewer.image_item.boundingRect())
    assert (placed.x(), placed.y(), placed.width(), placed.height()) == (20, 15, 40, 30)  # overlays stay aligned

    with qtbot.waitSignal(viewer.image_shown, timeout=10_000):
        viewer.set_encoder_steps(NO_STEPS)  # a project without steps: the choice goes away
    assert viewer.stretch_combo.findText(AS_ENCODED) < 0 and viewer.stretch == "auto"
