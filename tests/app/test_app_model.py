"""The window's model: re-ranking re-sorts the table and keeps the map's bookkeeping right (no Qt views)."""
import numpy as np
import pytest
from small_projects import six_item_project

from oddscope.app.model import ProjectModel, encoder_text


@pytest.fixture
def model(tmp_path, qapp):
    folder = six_item_project(tmp_path)
    m = ProjectModel()
    m.open(folder)
    yield m
    m.close()


def test_apply_ranking_sorts_by_the_new_scores_with_unscored_items_last(model):
    assert list(model.table.index) == [3, 1, 5, 2, 4, 0]  # the knn ranking
    model.apply_ranking("custom", np.array([0.6, np.nan, 0.8, 0.1, np.nan, 0.7]), None)
    assert list(model.table.index) == [2, 5, 0, 3, 1, 4]  # NaN scores last, in their previous order
    assert list(model.table["rank"]) == [1, 2, 3, 4, 0, 0]


def test_map_bookkeeping_follows_the_re_sorted_rows(model):
    model.apply_ranking("custom", np.array([0.6, 0.2, 0.8, 0.1, 0.3, 0.7]), None)
    assert list(model.map_ids) == [0, 1, 2, 3, 5]  # id order, item 4 has no map position
    xy = model.map_xy()
    for position, item_id in enumerate(model.map_ids):
        assert model.map_position(int(item_id)) == position
        assert xy[position].tolist() == [2.0 * item_id, 2.0 * item_id + 1]
    assert model.map_position(4) is None
    assert list(model.map_positions([5, 4, 0])) == [4, 0]


def test_the_encoder_text_names_the_preprocessing_when_there_is_some(model):
    assert encoder_text(model.project) == "not indexed yet"
    record = {"spec": "efficientnet-lite0", "weights": "ImageNet (lite0.pth)"}
    model.project.set_setting("encoder", {**record, "preprocess": "none"})
    assert encoder_text(model.project) == "efficientnet-lite0 · weights: ImageNet (lite0.pth)"
    model.project.set_setting("encoder", {**record, "preprocess": "background,crop=0.5"})
    assert encoder_text(model.project) == ("efficientnet-lite0 · preprocess: background,crop=0.5 · "
                                           "weights: ImageNet (lite0.pth)")
