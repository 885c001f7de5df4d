"""Clusterers recover separated blobs, are deterministic, and scale by sample-then-assign."""
import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from oddscope.core.models import clustering
from oddscope.core.models.clustering import CLUSTERERS, choose_n_clusters, cluster, cluster_all


@pytest.fixture(scope="module")
def blobs():
    centers = np.random.default_rng(0).uniform(-10, 10, size=(4, 32))
    X, y = make_blobs(n_samples=400, centers=centers, random_state=1)
    return X.astype(np.float32), y


@pytest.mark.parametrize("method", CLUSTERERS)
def test_recovers_separated_blobs(blobs, method):
    X, y = blobs
    labels = cluster(X, method, n_clusters=4)
    assert labels.dtype == np.int32 and labels.shape == y.shape
    assert adjusted_rand_score(y, labels) > 0.9


def test_cluster_all_names_columns_and_chooses_k(blobs):
    X, y = blobs
    result = cluster_all(X)
    assert set(result) == {f"cluster_{m}" for m in CLUSTERERS}
    for labels in result.values():
        assert len(np.unique(labels)) == 4
        assert adjusted_rand_score(y, labels) > 0.9


def test_choose_n_clusters_finds_blob_count(blobs):
    assert choose_n_clusters(blobs[0]) == 4


@pytest.mark.parametrize("method", CLUSTERERS)
def test_deterministic_with_seed(blobs, method):
    first = cluster(blobs[0], method, n_clusters=6, seed=3)
    second = cluster(blobs[0], method, n_clusters=6, seed=3)
    np.testing.assert_array_equal(first, second)
    assert adjusted_rand_score(blobs[1], first) > 0.8  # 6 clusters over 4 blobs, each within one; chance 0


@pytest.mark.parametrize("method", ["gmm", "ward"])
def test_fit_on_sample_then_assign_rest(blobs, method):
    X, y = blobs
    labels = cluster(X, method, n_clusters=4, sample_size=40)
    assert adjusted_rand_score(y, labels) > 0.9
    np.testing.assert_array_equal(labels, cluster(X, method, n_clusters=4, sample_size=40))


def test_minibatch_kmeans_path(blobs, monkeypatch):
    monkeypatch.setattr(clustering, "MINIBATCH_ABOVE", 100)
    X, y = blobs
    labels = cluster(X, "kmeans", n_clusters=4)
    assert adjusted_rand_score(y, labels) > 0.9
    np.testing.assert_array_equal(labels, cluster(X, "kmeans", n_clusters=4))


def test_labels_numbered_by_decreasing_size():
    centers = np.eye(3, 16) * 20
    X, _ = make_blobs(n_samples=[20, 80, 50], centers=centers, random_state=0)
    labels = cluster(X.astype(np.float32), "kmeans", n_clusters=3)
    np.testing.assert_array_equal(np.bincount(labels), [80, 50, 20])


@pytest.mark.parametrize("n", [1, 2, 3])
def test_tiny_inputs(n):
    X = np.random.default_rng(0).normal(size=(n, 8)).astype(np.float32)
    for labels in cluster_all(X).values():
        assert labels.shape == (n,) and labels.dtype == np.int32 and labels.min() >= 0


def test_bad_inputs_raise(blobs):
    X = blobs[0].copy()
    X[5, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        cluster(X)
    with pytest.raises(ValueError, match="unknown clustering"):
        cluster(blobs[0], "dbscan")
    with pytest.raises(ValueError, match="n_clusters"):
        cluster(blobs[0], n_clusters=0)
