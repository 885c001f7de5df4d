"""A guided feature space in the app: its rankings are listed beside the raw ones and re-sort the grid."""
import numpy as np
from windows import open_window

from oddscope.core.project.store import Project
from oddscope.core.workflows.guidance import add_space


def test_a_feature_space_ranking_is_chosen_like_any_other(qtbot, demo_project):
    with Project.open(demo_project, writable=True) as project:
        ids = project.load_array("test_ids")
        project.set_labels([(i, ..., [f"pose:{'left' if n % 2 else 'right'}"]) for n, i in enumerate(ids[:40])])
        add_space(project, "no-pose", "pose")
        guided = project.load_array("score_knn@no-pose")
    window = open_window(qtbot, demo_project)
    try:
        names = [window.ranking_combo.itemText(i) for i in range(window.ranking_combo.count())]
        assert "knn@no-pose" in names and "knn" in names
        window.ranking_combo.setCurrentText("knn@no-pose")
        assert int(window.ranking.visible_ids()[0]) == int(np.nanargmax(guided))
    finally:
        window.close()
    with Project.open(demo_project) as project:
        assert project.get_setting("ranking") == "knn@no-pose"
