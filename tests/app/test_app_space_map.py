"""A feature space's own map: computed on request as a status-bar task, shown while the space is in use."""
import numpy as np
import test_app_guidance_panel as panel_tests

from oddscope.core.project.store import Project

SPACE = panel_tests.SPACE
guided_dir, guided_window = panel_tests.guided_dir, panel_tests.guided_window  # the Guidance dock's fixtures


def test_a_space_map_is_computed_in_the_background_and_the_map_follows_the_space(qtbot, guided_window):
    window, guidance = guided_window, guided_window.guidance
    raw_xy = window.model.map_xy().copy()
    guidance.use_space(SPACE)
    assert np.array_equal(window.model.map_xy(), raw_xy)  # no map of its own yet: the raw one stays
    guidance.panel.select(SPACE)
    assert guidance.panel.map_button.isEnabled()
    guidance.panel.map_button.click()
    assert window.tasks.running("guidance") is not None  # UMAP runs in a child process, not on the GUI thread
    assert not guidance.panel.map_button.isEnabled()
    qtbot.waitUntil(lambda: not window.tasks.running() and window.model.can_label, timeout=300_000)
    with Project.open(window.model.project.root) as project:
        stored = project.load_array(f"umap@{SPACE}")
    expected = stored[window.model.map_ids]
    assert np.isfinite(expected).all() and not np.allclose(expected, raw_xy)
    assert np.allclose(window.model.map_xy(), expected)  # in use: the map view shows the space's map
    assert np.allclose(window.views._shown_xy, expected)
    guidance.use_space(None)
    assert np.array_equal(window.model.map_xy(), raw_xy)  # raw again
    guidance.use_space(SPACE)
    assert np.allclose(window.model.map_xy(), expected)
