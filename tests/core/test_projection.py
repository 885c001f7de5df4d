"""The 2-D map: blobs stay apart, new items land near their blob, both kNN paths, save/load, edge cases.

UMAP's numba JIT costs ~20 s once per process, so fitted maps are shared module fixtures.
"""
import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

from oddscope.core.models import projection
from oddscope.core.models.projection import MapProjection, fit_map
from oddscope.core.progress import Cancelled, Progress

N_BLOBS, DIM, K = 5, 64, 15


@pytest.fixture(scope="module")
def blobs():
    centers = np.random.default_rng(0).uniform(-10, 10, size=(N_BLOBS, DIM))
    X, y = make_blobs(n_samples=300, centers=centers, random_state=1)
    X_new, y_new = make_blobs(n_samples=50, centers=centers, random_state=2)
    return X.astype(np.float32), y, X_new.astype(np.float32), y_new


@pytest.fixture(scope="module")
def knn(blobs):
    """hnswlib-style graph: self in column 0, cosine distances (1 - cos)."""
    X = blobs[0]
    distances, indices = NearestNeighbors(n_neighbors=K + 1, metric="cosine").fit(X).kneighbors(X)
    return indices, distances


@pytest.fixture(scope="module")
def own_nn_map(blobs):
    """The map fitted with its own NN-descent, and its progress reports (every layout epoch reported)."""
    reports = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(projection, "LAYOUT_REPORT_S", 0.0)
        model = MapProjection(n_neighbors=K, seed=0).fit(blobs[0], progress=lambda *r: reports.append(r))
    return model, reports


@pytest.fixture(scope="module")
def knn_map(blobs, knn):
    return MapProjection(n_neighbors=K, seed=0).fit(blobs[0], knn=knn)


def leave_one_out_accuracy(coords, labels, k=5):
    """Fraction of points whose k nearest *other* map points mostly share their label."""
    idx = NearestNeighbors(n_neighbors=k + 1).fit(coords).kneighbors(coords, return_distance=False)[:, 1:]
    votes = labels[idx]
    majority = np.array([np.bincount(row, minlength=N_BLOBS).argmax() for row in votes])
    return np.mean(majority == labels)


def placement_accuracy(model, y, coords_new, y_new):
    return KNeighborsClassifier(n_neighbors=5).fit(model.embedding_, y).score(coords_new, y_new)


def test_map_keeps_blobs_apart_and_reports_stages(blobs, own_nn_map):
    model, reports = own_nn_map
    stages = [stage for stage, _, _ in reports]
    assert model.embedding_.shape == (300, 2) and model.embedding_.dtype == np.float32
    assert leave_one_out_accuracy(model.embedding_, blobs[1]) > 0.95
    assert [s for i, s in enumerate(stages) if s != stages[i - 1] or i == 0] == [
        "map: pca", "map: umap", "map: layout", "map: done"]


def test_the_layout_reports_its_epochs_so_umap_never_sits_at_zero(own_nn_map):
    assert [(d, t) for s, d, t in own_nn_map[1] if s == "map: umap"] == [(0, 0)]  # busy, not stuck at 0/1
    layout = [(done, total) for stage, done, total in own_nn_map[1] if stage == "map: layout"]
    total = layout[0][1]
    assert total > 1 and all(t == total for _, t in layout)
    done = [d for d, _ in layout]
    assert done[0] == 0 and done[-1] == total and done == sorted(done) and len(set(done)) > 10


def test_cancel_stops_the_layout_between_epochs(blobs):
    def cancel_after_a_few_epochs(stage, done, total):
        if stage == "map: layout" and done >= 3:
            progress.cancel()

    progress = Progress(cancel_after_a_few_epochs)
    with pytest.MonkeyPatch.context() as patch, pytest.raises(Cancelled):
        patch.setattr(projection, "LAYOUT_REPORT_S", 0.0)
        MapProjection(n_neighbors=K, seed=0).fit(blobs[0][:60], progress=progress)


def test_transform_places_new_points_near_their_blob(blobs, own_nn_map):
    model, _ = own_nn_map
    coords = model.transform(blobs[2])
    assert model.transform_method_ == "umap"
    assert coords.shape == (50, 2) and coords.dtype == np.float32
    assert placement_accuracy(model, blobs[1], coords, blobs[3]) > 0.95


def test_seeded_fit_is_deterministic(blobs, own_nn_map):
    coords, _ = fit_map(blobs[0], n_neighbors=K, seed=0)
    np.testing.assert_array_equal(coords, own_nn_map[0].embedding_)
    assert leave_one_out_accuracy(coords, blobs[1]) > 0.95  # a map of the blobs, not a constant


def test_precomputed_knn_map_and_fallback_transform(blobs, knn_map):
    assert leave_one_out_accuracy(knn_map.embedding_, blobs[1]) > 0.95
    coords = knn_map.transform(blobs[2])
    assert knn_map.transform_method_ == "knn_mean"
    assert placement_accuracy(knn_map, blobs[1], coords, blobs[3]) > 0.95
    # A fitted item is placed (almost exactly) on its own map position.
    np.testing.assert_allclose(knn_map.transform(blobs[0][:5]), knn_map.embedding_[:5], atol=1e-3)


def test_knn_given_without_self_column_gives_same_map(blobs, knn, knn_map):
    indices, distances = knn
    model = MapProjection(n_neighbors=K, seed=0).fit(blobs[0], knn=(indices[:, 1:], distances[:, 1:]))
    np.testing.assert_array_equal(model.embedding_, knn_map.embedding_)


def test_knn_with_too_few_neighbours_raises(blobs, knn):
    indices, distances = knn
    with pytest.raises(ValueError, match="n_neighbors"):
        MapProjection(n_neighbors=K).fit(blobs[0], knn=(indices[:, :5], distances[:, :5]))


@pytest.mark.parametrize("which", ["own_nn_map", "knn_map"])
def test_save_load_round_trip_gives_same_transform(which, request, blobs, tmp_path):
    model = request.getfixturevalue(which)
    model = model[0] if isinstance(model, tuple) else model
    model.save(tmp_path / "map.joblib")
    loaded = MapProjection.load(tmp_path / "map.joblib")
    np.testing.assert_array_equal(loaded.embedding_, model.embedding_)
    np.testing.assert_array_equal(loaded.transform(blobs[2]), model.transform(blobs[2]))
    assert loaded.transform_method_ == model.transform_method_


def test_load_rejects_foreign_file(tmp_path):
    import joblib

    joblib.dump({"something": 1}, tmp_path / "x.joblib")
    with pytest.raises(ValueError, match="not a saved Oddscope map"):
        MapProjection.load(tmp_path / "x.joblib")


@pytest.mark.parametrize("n", [1, 2, 3])
def test_fewer_than_four_items_gives_trivial_layout(blobs, n):
    coords, model = fit_map(blobs[0][:n])
    assert coords.shape == (n, 2) and np.isfinite(coords).all()
    placed = model.transform(blobs[0][:n])
    assert model.transform_method_ == "pca"
    np.testing.assert_allclose(placed, coords, atol=1e-5)
    if n > 1:  # distinct items get distinct positions
        assert len(np.unique(coords.round(5), axis=0)) == n


def test_small_collection_clips_n_neighbors(blobs):
    coords, model = fit_map(blobs[0][:8], n_neighbors=K)
    assert model.n_neighbors_ == 6
    assert coords.shape == (8, 2) and np.isfinite(coords).all()


def test_nan_rows_raise_clear_error(blobs, own_nn_map):
    X = blobs[0][:20].copy()
    X[3, 7] = np.nan
    with pytest.raises(ValueError, match=r"1 row\(s\) containing NaN.*\[3\]"):
        MapProjection().fit(X)
    with pytest.raises(ValueError, match="NaN"):
        own_nn_map[0].transform(X)


def test_bad_parameters_raise(blobs):
    with pytest.raises(ValueError, match="metric"):
        MapProjection(metric="manhattan").fit(blobs[0])
    with pytest.raises(ValueError, match="2-D"):
        MapProjection().fit(blobs[0][0])
    with pytest.raises(RuntimeError, match="not fitted"):
        MapProjection().transform(blobs[0])
