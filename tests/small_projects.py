"""Tiny projects written straight into the store, for tests of the app's model and views."""
import numpy as np
from PIL import Image

from oddscope.core.project.store import Project


def six_item_project(folder, n_ok: int = 6):
    """A project of six 8-px images at ``folder / "project"``: the first ``n_ok`` decoded, item 4 off the map,
    kNN scores ranking them 3, 1, 5, 2, 4, 0, and the kNN ranking chosen.  Returns the project folder."""
    (folder / "images").mkdir()
    paths = []
    for i in range(6):
        paths.append(folder / "images" / f"im{i}.png")
        Image.new("RGB", (8, 8)).save(paths[-1])
    umap = np.arange(12, dtype=np.float32).reshape(6, 2)
    umap[4] = np.nan  # item 4 is not on the map
    with Project.create(folder / "project") as project:
        project.add_items(paths)
        project.set_status([(i, "ok", None) for i in range(n_ok)])
        project.save_array("umap", umap)
        project.save_array("score_knn", np.array([0.1, 0.5, 0.3, 0.9, 0.2, 0.4], np.float32))
        project.save_array("test_ids", np.arange(6))
        project.set_setting("ranking", "knn")
    return folder / "project"
