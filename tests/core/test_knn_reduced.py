"""Memory before the kNN index (issue 12): PCA before the index (``KnnDetector(pca=N)``, ``index --knn-pca N``)
and float16 features (``index --dtype float16``) keep the neighbours, measured as recall@10 against exact
neighbours of the float32 features."""
import numpy as np
import pytest

from oddscope.core.models.detectors.knn import KnnDetector
from oddscope.core.models.knn import KnnIndex, brute_force_knn

K = 10


def clustered_features(n=1500, dim=256, clusters=20, seed=0):
    """Clusters in 256-d with a decaying spectrum (the variance of component i falls as i^-1.5), as encoder
    features have: most of the spread lies in the first hundred directions."""
    rng = np.random.default_rng(seed)
    scale = 1.0 / (1 + np.arange(dim)) ** 0.75
    centres = rng.normal(size=(clusters, dim)) * scale * 4
    return (centres[rng.integers(0, clusters, n)] + rng.normal(size=(n, dim)) * scale).astype(np.float32)


def recall(found, truth):
    return np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)])


@pytest.fixture(scope="module")
def features():
    X = clustered_features()
    truth, _ = brute_force_knn(X, X, K, "cosine", exclude_self=True)
    return X, truth


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_pca_to_128_before_the_index_keeps_the_neighbours(features, metric):
    X, truth = features
    if metric == "l2":
        truth, _ = brute_force_knn(X, X, K, "l2", exclude_self=True)
    detector = KnnDetector(k=K, metric=metric, pca=128).fit(X)
    assert detector.index_.dim == 128
    found, _ = detector.index_.query(detector.index_input(X), K, exclude_self=True)
    assert recall(found, truth) > 0.95


@pytest.mark.parametrize("hubness", [None, "local_scaling"])
def test_scores_through_the_reduced_index_are_in_the_metric_units(features, hubness):
    """Cosine distances come back from the Euclidean index on unit rows: the scores follow the full index's, a
    little smaller (the dropped components' share of each distance)."""
    X, _ = features
    full = KnnDetector(k=K, hubness=hubness).fit(X)
    reduced = KnnDetector(k=K, hubness=hubness, pca=128).fit(X)
    for exclude_self in (True, False):
        a, b = full.score(X, exclude_self), reduced.score(X, exclude_self)
        assert np.corrcoef(a, b)[0, 1] > 0.99
        np.testing.assert_allclose(np.median(b), np.median(a), rtol=0.1)


def test_float16_features_keep_the_neighbours(features):
    X, truth = features
    stored = X.astype(np.float16).astype(np.float32)  # what a project with --dtype float16 reads back
    found, _ = KnnIndex("cosine").build(stored).query(stored, K, exclude_self=True)
    assert recall(found, truth) > 0.99


def test_pca_is_recorded_in_the_detector_params_only_when_set():
    assert "pca" not in KnnDetector().params()
    assert KnnDetector(pca=64).params()["pca"] == 64
    with pytest.raises(ValueError, match="pca"):
        KnnDetector(pca=0)
