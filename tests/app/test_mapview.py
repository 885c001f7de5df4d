"""MapView: picking, selection gestures, colouring and level of detail, driven by real mouse events."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
from PySide6 import QtCore, QtGui
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest

from oddscope.app import map_layers
from oddscope.app.map_geometry import points_in_polygon
from oddscope.app.map_layers import HIGHLIGHT
from oddscope.app.map_render import NAN_COLOR
from oddscope.app.mapview import CURRENT_COLOR, MapView


@pytest.fixture
def view(qtbot):
    widget = MapView()
    qtbot.addWidget(widget)
    widget.resize(800, 600)
    widget.show()
    qtbot.waitExposed(widget)
    widget.activateWindow()
    return widget


@pytest.fixture
def grid(view):
    """10 x 10 points at integer coordinates: index = 10 * row + column, point = (column, row)."""
    cols, rows = np.meshgrid(np.arange(10), np.arange(10))
    xy = np.column_stack([cols.ravel(), rows.ravel()]).astype(np.float32)
    view.set_points(xy)
    return xy


def viewport_pos(view, data_xy) -> QPoint:
    """Viewport pixel of a data point (mouse events go to the graphics view's viewport)."""
    x, y = view.data_to_widget(np.asarray(data_xy, float))
    return view.plot_widget.viewport().mapFrom(view, QPoint(round(x), round(y)))


def drag(view, data_points, modifier=Qt.NoModifier):
    """Press at the first data point, move through the others, release at the last.

    pyqtgraph drops mouse moves closer than 10 ms apart (``mouseRateLimit``), so moves are paced."""
    viewport = view.plot_widget.viewport()
    positions = [viewport_pos(view, p) for p in data_points]
    QTest.mousePress(viewport, Qt.LeftButton, modifier, positions[0])
    for pos in positions[1:]:
        QTest.qWait(12)
        event = QtGui.QMouseEvent(QtCore.QEvent.MouseMove, QtCore.QPointF(pos),
                                  QtCore.QPointF(viewport.mapToGlobal(pos)), Qt.NoButton,
                                  Qt.LeftButton, modifier)
        QtCore.QCoreApplication.sendEvent(viewport, event)
    QTest.mouseRelease(viewport, Qt.LeftButton, modifier, positions[-1])


def pixel(image: QtGui.QImage, widget_xy) -> tuple:
    color = image.pixelColor(round(widget_xy[0]), round(widget_xy[1]))
    return color.red(), color.green(), color.blue()


def double_click_gap_ms() -> int:
    """Milliseconds to wait so two clicks are not merged into a double click."""
    return QtGui.QGuiApplication.styleHints().mouseDoubleClickInterval() + 20


def test_click_on_point_emits_its_index_and_selects_it(view, grid, qtbot):
    with qtbot.waitSignal(view.clicked) as clicked:
        qtbot.mouseClick(view.plot_widget.viewport(), Qt.LeftButton, pos=viewport_pos(view, grid[37]))
    assert clicked.args == [37]
    assert view.selection().tolist() == [37]
    assert view.pick_at(QPoint(*map(round, view.data_to_widget(grid[37] + 0.5)))) is None


def test_hover_emits_index_shows_popup_and_clears(view, grid, qtbot):
    view.set_tooltip_provider(lambda i: QtGui.QPixmap(32, 24))
    viewport = view.plot_widget.viewport()
    with qtbot.waitSignal(view.hovered) as hovered:
        qtbot.mouseMove(viewport, viewport_pos(view, grid[55]))
    assert hovered.args == [55]
    assert view.popup.isVisible() and view.popup.pixmap().size() == QtCore.QSize(32, 24)
    assert view.hover_marker.isVisible()
    with qtbot.waitSignal(view.hovered) as hovered:
        qtbot.mouseMove(viewport, viewport_pos(view, grid[55] + 0.5))
    assert hovered.args == [-1]
    assert not view.popup.isVisible()


def test_pick_before_and_after_the_kdtree_is_built_agree(view, qtbot):
    rng = np.random.default_rng(1)
    view.set_points(rng.normal(size=(5000, 2)).astype(np.float32))
    probes = [QPoint(*map(int, p)) for p in rng.uniform(100, 500, (50, 2))]
    view.wait_for_index()
    with_tree = [view.pick_at(p) for p in probes]
    view._tree = None  # force the brute-force path used while the tree is still building
    assert [view.pick_at(p) for p in probes] == with_tree
    assert any(i is not None for i in with_tree)


def test_ctrl_click_toggles_shift_click_adds_escape_clears(view, grid, qtbot):
    viewport = view.plot_widget.viewport()
    qtbot.mouseClick(viewport, Qt.LeftButton, pos=viewport_pos(view, grid[3]))
    qtbot.wait(double_click_gap_ms())
    qtbot.mouseClick(viewport, Qt.LeftButton, Qt.ControlModifier, viewport_pos(view, grid[40]))
    assert view.selection().tolist() == [3, 40]
    qtbot.wait(double_click_gap_ms())
    qtbot.mouseClick(viewport, Qt.LeftButton, Qt.ShiftModifier, viewport_pos(view, grid[99]))
    assert view.selection().tolist() == [3, 40, 99]
    qtbot.wait(double_click_gap_ms())
    qtbot.mouseClick(viewport, Qt.LeftButton, Qt.ControlModifier, viewport_pos(view, grid[3]))
    assert view.selection().tolist() == [40, 99]
    with qtbot.waitSignal(view.selection_changed) as changed:
        qtbot.keyClick(viewport, Qt.Key_Escape)
    assert changed.args[0].size == 0 and view.selection().size == 0


def test_rectangle_mode_drag_selects_the_enclosed_block(view, grid, qtbot):
    QTest.keyClick(view.plot_widget.viewport(), Qt.Key_R)
    assert view.mode() == "rect"
    with qtbot.waitSignal(view.selection_changed) as changed:
        drag(view, [(1.5, 2.5), (3.0, 4.0), (4.5, 5.5)])
    expected = sorted(10 * r + c for r in (3, 4, 5) for c in (2, 3, 4))
    assert changed.args[0].tolist() == expected
    assert changed.args[0].dtype == np.int64
    assert not view._drag.rect_overlay.isVisible()


def test_shift_drag_in_pan_mode_adds_a_rectangle(view, grid):
    view.set_selection([0])
    drag(view, [(6.5, 6.5), (8.0, 8.0), (9.5, 9.5)], Qt.ShiftModifier)
    assert view.mode() == "pan"
    assert view.selection().tolist() == [0, 77, 78, 79, 87, 88, 89, 97, 98, 99]


def test_lasso_selects_exactly_the_points_inside(view, grid, qtbot):
    QTest.keyClick(view.plot_widget.viewport(), Qt.Key_L)
    assert view.mode() == "lasso"
    corners = np.array([(0.5, 0.5), (8.75, 0.5), (0.5, 8.75), (0.5, 0.5)])
    path = [a + (b - a) * t for a, b in zip(corners[:-1], corners[1:]) for t in np.linspace(0, 1, 12)]
    with qtbot.waitSignal(view.selection_changed) as changed:
        drag(view, path)
    # inside the triangle x > 0.5, y > 0.5, x + y < 9.25 (no grid point lies near an edge)
    expected = [i for i, (x, y) in enumerate(grid) if x > 0.5 and y > 0.5 and x + y < 9.25]
    assert changed.args[0].tolist() == expected


def test_points_in_polygon_matches_qpainterpath_on_a_concave_polygon():
    rng = np.random.default_rng(0)
    polygon = np.array([(0, 0), (10, 0), (10, 10), (5, 3), (0, 10), (2, 5)], float)
    xy = rng.uniform(-1, 11, (3000, 2))
    path = QtGui.QPainterPath()
    path.addPolygon(QtGui.QPolygonF([QtCore.QPointF(*p) for p in polygon]))
    expected = np.array([path.contains(QtCore.QPointF(*p)) for p in xy])
    assert np.array_equal(points_in_polygon(xy[:, 0], xy[:, 1], polygon), expected)
    assert not points_in_polygon(xy[:, 0], xy[:, 1], polygon[:2]).any()


def test_set_colors_draws_nan_grey_and_high_values_at_the_top_of_the_map(view, grid):
    values = np.linspace(0, 1, 100)
    values[12] = np.nan
    view.set_colors(values, cmap="viridis")
    image = view.grab().toImage()
    assert pixel(image, view.data_to_widget(grid[12])) == NAN_COLOR[:3]
    r, g, b = pixel(image, view.data_to_widget(grid[99]))
    assert r > 200 and g > 200 and b < 80  # viridis top: yellow
    assert view.colorbar.scene() is not None and not view.legend_names()
    with pytest.raises(ValueError):
        view.set_colors(np.zeros(5))


def test_nan_only_bins_are_grey_in_the_density_image(view):
    rng = np.random.default_rng(2)
    xy = rng.uniform(0, 1, (60_000, 2)).astype(np.float32)
    values = rng.random(60_000)
    values[xy[:, 0] < 0.3] = np.nan
    view.set_points(xy)
    view.set_colors(values)
    assert view.density_item.isVisible()
    rgba = view.density_item.image  # (x bins, y bins, 4)
    occupied = rgba[..., 3] > 0
    left = rgba[: rgba.shape[0] // 5][occupied[: rgba.shape[0] // 5]]
    assert (left[:, :3] == NAN_COLOR[:3]).all()
    right = rgba[-rgba.shape[0] // 5:][occupied[-rgba.shape[0] // 5:]]
    assert not (right[:, :3] == NAN_COLOR[:3]).all(axis=1).any()


def test_categorical_legend_lists_the_names_and_replaces_the_colorbar(view, grid):
    view.set_colors(np.arange(100.0))
    names = ["ok", "scratch", "<dust>"]
    view.set_categories(np.arange(100) % 4 - 1, names, label="tag")
    assert view.legend_names() == names
    assert view.colorbar.scene() is None
    with pytest.raises(ValueError):
        view.set_categories(np.full(100, 3), names)


def test_zoomed_out_renders_density_and_zoomed_in_renders_scatter(view):
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 1000, (200_000, 2)).astype(np.float32)
    view.set_points(xy)
    view.set_colors(xy[:, 0])
    assert view.density_item.isVisible() and not view.scatter_item.isVisible()
    x0, x1, y0, y1 = view.view_range()
    assert x0 <= xy[:, 0].min() and xy[:, 0].max() <= x1 and y0 <= xy[:, 1].min()
    view.set_view_range(500, 520, 500, 520)
    assert view.scatter_item.isVisible() and not view.density_item.isVisible()
    x0, x1, y0, y1 = view.view_range()
    in_view = ((xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)).sum()
    assert in_view <= view.scatter_item.point_count() <= 60_000


def test_panning_rerenders_after_the_debounce(view, qtbot):
    rng = np.random.default_rng(4)
    view.set_points(rng.uniform(0, 100, (100_000, 2)).astype(np.float32))
    view._vb.translateBy(x=30.0)  # as a mouse pan does: no explicit refresh
    x0, _, y0, _ = view.view_range()
    qtbot.waitUntil(lambda: abs(view.density_item.mapRectToParent(
        view.density_item.boundingRect()).left() - x0) < 1e-6, timeout=2000)


def test_set_current_draws_a_ring_around_the_point(view, grid):
    view.set_current(44)
    assert view.current() == 44 and view.current_marker.isVisible()
    image = view.grab().toImage()
    cx, cy = view.data_to_widget(grid[44])
    ring = [pixel(image, (cx + dx, cy + dy)) for dx in range(-10, 11) for dy in range(-10, 11)]
    assert any(abs(r - CURRENT_COLOR[0]) < 30 and abs(g - CURRENT_COLOR[1]) < 30 and b < 90
               for r, g, b in ring)
    view.set_current(None)
    assert not view.current_marker.isVisible()
    with pytest.raises(IndexError):
        view.set_current(100)


def test_set_selection_is_silent_unless_asked_and_validates(view, grid, qtbot):
    with qtbot.assertNotEmitted(view.selection_changed):
        view.set_selection([5, 2, 5])
    assert view.selection().tolist() == [2, 5] and view.selection_markers.isVisible()
    with qtbot.waitSignal(view.selection_changed):
        view.set_selection([7], emit=True)
    with pytest.raises(IndexError):
        view.set_selection([100])
    with pytest.raises(ValueError):
        view.set_points(np.zeros((4, 3)))
    with pytest.raises(ValueError):
        view.set_points(np.array([[0.0, np.nan]]))


def test_selection_beyond_the_marker_cap_is_drawn_as_an_image(view, grid, monkeypatch):
    monkeypatch.setattr(map_layers, "SELECTION_MARKER_CAP", 10)
    view.set_selection(range(20, 40))
    assert view.selection_image.isVisible() and not view.selection_markers.isVisible()
    image = view.grab().toImage()
    assert pixel(image, view.data_to_widget(grid[25])) == HIGHLIGHT[:3]
    assert pixel(image, view.data_to_widget(grid[45])) != HIGHLIGHT[:3]
    view.set_view_range(0, 2, 1.6, 3.4)  # only ~6 selected points in view: markers again
    assert view.selection_markers.isVisible() and not view.selection_image.isVisible()
    assert 0 < view.selection_markers.point_count() <= 10


def test_mapping_helpers_round_trip(view, grid):
    xy = np.array([[2.0, 7.0], [9.0, 0.0]])
    widget_xy = view.data_to_widget(xy)
    for (wx, wy), (x, y) in zip(widget_xy, xy):
        back = view.widget_to_data(QtCore.QPointF(wx, wy))
        assert back == pytest.approx((x, y), abs=1e-6)
    assert widget_xy[0, 1] < widget_xy[1, 1]  # y points up


def test_screenshot_of_a_scored_map_with_a_selection(view):
    """Saves /tmp/mapview.png (100k points coloured by a score, a selection, the current item)."""
    rng = np.random.default_rng(5)
    centers = rng.uniform(-10, 10, (10, 2))
    label = rng.integers(0, 10, 100_000)
    xy = (centers[label] + rng.normal(size=(100_000, 2)) * rng.uniform(0.4, 1.5, 10)[label, None])
    score = np.linalg.norm(xy - centers[label], axis=1)
    score[:300] = np.nan
    view.resize(1200, 900)
    view.set_points(xy.astype(np.float32))
    view.set_colors(score, vmax=4)
    selected = np.flatnonzero(label == 3)[:800]
    view.set_selection(selected)
    view.set_current(int(selected[0]))
    view.refresh()
    image = view.grab().toImage()
    image.save("/tmp/mapview.png")
    assert view.density_item.isVisible()
    assert pixel(image, view.data_to_widget(xy[selected[1]])) == HIGHLIGHT[:3]


def test_a_big_map_is_coloured_and_binned_in_a_worker_with_the_same_image(qtbot, monkeypatch):
    """From ASYNC_POINTS on (5M points: 0.2-0.4 s a pass) the colouring and the density image are worked out
    off the GUI thread, and show the same picture as the direct path."""
    import threading

    from oddscope.app import map_render

    xy = np.random.default_rng(3).normal(size=(3000, 2)).astype(np.float32)
    values = xy[:, 0].astype(np.float64)
    images, threads = [], []
    plan = map_render.plan_points
    monkeypatch.setattr(map_layers, "plan_points",
                        lambda *a, **k: (threads.append(threading.current_thread()), plan(*a, **k))[1])
    for async_points in (10**9, 1000):  # first the direct path, then the worker's
        monkeypatch.setattr(map_layers, "ASYNC_POINTS", async_points)
        view = MapView(scatter_threshold=100)
        qtbot.addWidget(view)
        view.resize(600, 400)
        view.show()
        qtbot.waitExposed(view)
        view.set_points(xy)
        view.set_colors(values)
        assert view.drawing == (async_points == 1000)  # asked for, not done on the GUI thread
        qtbot.waitUntil(lambda: not view.drawing, timeout=10_000)
        images.append(view.density_item.image.copy())
        assert view.colorbar.scene() is not None
    assert threads[0] is threading.main_thread() and threads[-1] is not threading.main_thread()
    assert np.array_equal(images[0], images[1]) and images[1][..., 3].any()
