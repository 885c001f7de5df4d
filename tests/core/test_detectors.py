import json

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import LocalOutlierFactor

from oddscope.core.models.detectors.knn import KnnDetector
from oddscope.core.models.registry import DEFAULT_DETECTORS, DETECTORS, make_detector

FAST = {"autoencoder": {"epochs": 15}, "iforest": {"n_estimators": 100}}


def detector(name, **kw):
    return make_detector(name, **{**FAST.get(name, {}), **kw})


def blob_with_outliers(n=400, n_out=10, dim=24, seed=0):
    """Gaussian blob off the origin plus points far from it in random directions."""
    rng = np.random.default_rng(seed)
    centre = np.full(dim, 3.0)
    normal = centre + rng.normal(size=(n, dim))
    far = centre + 12.0 * rng.normal(size=(n_out, dim))
    X = np.vstack([normal, far]).astype(np.float32)
    return X, np.r_[np.zeros(n), np.ones(n_out)].astype(bool)


def two_densities(seed=0, dim=32):
    """A tight and a loose cluster; the outliers sit just outside the tight one,
    closer to it than loose-cluster members are to each other."""
    rng = np.random.default_rng(seed)
    tight, loose = np.eye(dim)[0] * 10, np.eye(dim)[1] * 10
    directions = rng.normal(size=(10, dim))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    X = np.vstack([tight + 0.1 * rng.normal(size=(400, dim)),
                   loose + 1.0 * rng.normal(size=(400, dim)),
                   tight + 1.5 * directions]).astype(np.float32)
    return X, np.r_[np.zeros(800), np.ones(10)].astype(bool)


def subspace_with_outliers(n=500, n_out=15, dim=32, rank=3, seed=0):
    """Normal items on a 3-d plane in 32-d; outliers off it in random directions but *closer* to the centre
    (half the median norm): no distance or norm finds them, only a model of the plane does."""
    rng = np.random.default_rng(seed)
    normal = rng.normal(size=(n, rank)) @ rng.normal(size=(rank, dim))
    off = rng.normal(size=(n_out, dim))
    off *= (0.5 * np.median(np.linalg.norm(normal, axis=1)) / np.linalg.norm(off, axis=1))[:, None]
    return np.vstack([normal, off]).astype(np.float32), np.r_[np.zeros(n), np.ones(n_out)].astype(bool)


def test_autoencoder_learns_the_normal_manifold():
    """Training is what finds these outliers: an untrained network ranks them below chance.

    Chance AUROC is 0.5 with a standard deviation of about 0.08 for 15 outliers among 500; 0.95 is
    5 standard deviations above it.
    """
    X, y = subspace_with_outliers()
    untrained = roc_auc_score(y, make_detector("autoencoder", epochs=0).fit(X).score(X, exclude_self=True))
    trained = roc_auc_score(y, detector("autoencoder").fit(X).score(X, exclude_self=True))
    assert untrained < 0.6 and trained > 0.95, (untrained, trained)


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_unsupervised_mode_ranks_planted_outliers_first(name):
    X, y = blob_with_outliers()
    scores = detector(name).fit(X).score(X, exclude_self=True)
    assert scores.shape == (len(X),) and scores.dtype == np.float64
    assert roc_auc_score(y, scores) > 0.95


@pytest.mark.parametrize("name", DEFAULT_DETECTORS)
def test_reference_mode_scores_a_new_test_set(name):
    X, y = blob_with_outliers(seed=1)
    normals = blob_with_outliers(n=400, n_out=0, seed=2)[0]
    scores = detector(name).fit(normals).score(X)
    assert roc_auc_score(y, scores) > 0.95


def test_local_scaling_beats_plain_knn_on_uneven_densities():
    X, y = two_densities()
    aurocs = {name: roc_auc_score(y, make_detector(name).fit(X).score(X, exclude_self=True))
              for name in ("knn", "knn-l2", "knn-ls")}
    # Plain distances rank the whole loose cluster above the outliers.
    assert aurocs["knn"] < 0.7 and aurocs["knn-l2"] < 0.7
    assert aurocs["knn-ls"] > 0.95


# Formula checks use l1, answered exactly; hnswlib (cosine/l2) is approximate,
# its agreement with exact neighbours is covered in test_knn.py.
def test_knn_score_is_mean_distance_to_k_nearest_excluding_self():
    X, _ = blob_with_outliers(n=200)
    D = cdist(X, X, "cityblock")
    unsupervised = make_detector("knn-l1", k=5).fit(X)
    np.fill_diagonal(D, np.inf)
    want = np.sort(D, axis=1)[:, :5].mean(axis=1)
    np.testing.assert_allclose(unsupervised.score(X, exclude_self=True), want, rtol=1e-5)
    # Without exclude_self each item finds itself at distance 0 first.
    np.fill_diagonal(D, 0.0)
    with_self = np.sort(D, axis=1)[:, :5].mean(axis=1)
    np.testing.assert_allclose(unsupervised.score(X), with_self, rtol=1e-5)


def test_hnsw_knn_scores_agree_with_exact_scores():
    X, _ = blob_with_outliers(n=300)
    D = cdist(X, X, "euclidean")
    np.fill_diagonal(D, np.inf)
    want = np.sort(D, axis=1)[:, :5].mean(axis=1)
    got = make_detector("knn-l2", k=5).fit(X).score(X, exclude_self=True)
    assert np.mean(np.isclose(got, want, rtol=1e-4)) >= 0.98
    assert np.all(got >= want * (1 - 1e-5))  # a missed neighbour can only raise a score


def test_local_scaling_formula_and_memory_sigma_excludes_self():
    X, _ = blob_with_outliers(n=150, n_out=5, dim=8)
    k = 4
    D = cdist(X, X, "cityblock")
    np.fill_diagonal(D, np.inf)
    nn = np.argsort(D, axis=1)[:, :k]
    d = np.take_along_axis(D, nn, axis=1)
    sigma = d[:, -1]
    want = (1 - np.exp(-(d**2) / (sigma[:, None] * sigma[nn]))).mean(axis=1)
    got = KnnDetector(k=k, metric="l1", hubness="local_scaling").fit(X).score(X, exclude_self=True)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_lof_matches_sklearn_in_both_modes():
    X, _ = blob_with_outliers(n=300, dim=8)
    test = blob_with_outliers(n=50, seed=3, dim=8)[0]
    ours = make_detector("lof", k=10, metric="l1").fit(X)
    unsupervised = LocalOutlierFactor(n_neighbors=10, metric="manhattan").fit(X)
    np.testing.assert_allclose(ours.score(X, exclude_self=True), -unsupervised.negative_outlier_factor_, rtol=1e-5)
    novelty = LocalOutlierFactor(n_neighbors=10, metric="manhattan", novelty=True).fit(X)
    np.testing.assert_allclose(ours.score(test), -novelty.score_samples(test), rtol=1e-5)


def test_mahalanobis_reduces_wide_features_and_scores_squared_distance():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 40)).astype(np.float32)
    wide = make_detector("mahalanobis", max_dims=16).fit(X)
    assert wide.reducer_.pca_.n_components_ == 16
    narrow = make_detector("mahalanobis").fit(X)  # 40 <= 256: no PCA
    assert narrow.reducer_.pca_ is None
    diff = X - narrow.gaussian_.location_
    want = np.einsum("ij,jk,ik->i", diff, narrow.gaussian_.precision_, diff)
    np.testing.assert_allclose(narrow.score(X), want, rtol=1e-5)


@pytest.mark.parametrize("name", ["autoencoder", "iforest", "mahalanobis"])
def test_same_seed_gives_identical_scores(name):
    X, y = blob_with_outliers(n=300)
    kw = {"max_dims": 16} if name in ("autoencoder", "mahalanobis") else {}  # exercise the PCA step
    first = detector(name, **kw).fit(X).score(X, exclude_self=True)
    second = detector(name, **kw).fit(X).score(X, exclude_self=True)
    np.testing.assert_array_equal(first, second)
    assert roc_auc_score(y, first) > 0.95  # the same useful scores, not a constant (AUROC 0.5)


def test_seed_changes_autoencoder_and_forest():
    X, _ = blob_with_outliers(n=200)
    for name in ("autoencoder", "iforest"):
        a = detector(name, seed=0).fit(X).score(X)
        b = detector(name, seed=1).fit(X).score(X)
        assert not np.allclose(a, b)


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_params_are_json_and_rebuild_the_detector(name):
    original = make_detector(name)
    params = json.loads(json.dumps(original.params()))
    rebuilt = make_detector(name, **params)
    assert rebuilt.params() == original.params() and rebuilt.name == name


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_bad_inputs_raise_value_error(name):
    X, _ = blob_with_outliers(n=60, dim=8)
    with pytest.raises(ValueError, match="not fitted"):
        make_detector(name).score(X)
    with pytest.raises(ValueError, match="empty"):
        make_detector(name).fit(np.zeros((0, 8), np.float32))
    bad = X.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        make_detector(name).fit(bad)
    fitted = detector(name).fit(X)
    with pytest.raises(ValueError, match="NaN"):
        fitted.score(bad)
    with pytest.raises(ValueError, match="9 features but 8"):
        fitted.score(np.zeros((5, 9), np.float32))
    with pytest.raises(ValueError, match="exclude_self"):
        fitted.score(X[:10], exclude_self=True)


def test_registry():
    assert set(DEFAULT_DETECTORS) <= set(DETECTORS) and "knn-l1" not in DEFAULT_DETECTORS
    assert make_detector("knn-ls").hubness == "local_scaling"
    assert make_detector("knn-l2", k=7).params() == {"k": 7, "metric": "l2", "hubness": None}
    with pytest.raises(ValueError, match="unknown detector"):
        make_detector("oracle")
    with pytest.raises(ValueError, match="unknown metric"):
        make_detector("knn", metric="hamming")
    with pytest.raises(ValueError, match="hubness"):
        make_detector("knn", hubness="snn")

