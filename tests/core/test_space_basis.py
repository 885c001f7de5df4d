"""A guided space's distance basis keeps its kNN scores, and detectors on the same features share one index."""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr

from oddscope.core.models.detectors.knn import KnnDetector
from oddscope.core.models.detectors.lof import LofDetector
from oddscope.core.models.guidance.erasure import concept_matrix, fit_leace
from oddscope.core.models.knn import IndexCache, brute_force_knn
from oddscope.core.models.reduction import DistanceBasis, fit_distance_basis


def encoder_like(n=1500, d=600, seed=0):
    """Features with a decaying spectrum (as encoders' are: a low intrinsic dimension), uncentred, a binary
    nuisance shifting a few directions."""
    rng = np.random.default_rng(seed)
    scales = 1.0 / np.arange(1, d + 1) ** 1.2
    X = (rng.standard_normal((n, d)) * scales) @ np.linalg.qr(rng.standard_normal((d, d)))[0]
    nuisance = rng.random(n) < 0.2
    X[:, :4] += 0.5 * nuisance[:, None]
    return (X + 0.3).astype(np.float32), nuisance


def test_the_basis_keeps_distances_exactly_within_its_span():
    rng = np.random.default_rng(1)
    X = (rng.standard_normal((400, 12)) @ rng.standard_normal((12, 300)) + 2.0).astype(np.float32)
    basis = fit_distance_basis(X, 20)
    Z = basis.apply(X)
    assert Z.shape == (400, 21) and Z.dtype == np.float32
    for metric in ("cosine", "l2"):
        full = brute_force_knn(X, X, 5, metric, exclude_self=True)[1]
        reduced = brute_force_knn(Z, Z, 5, metric, exclude_self=True)[1]
        np.testing.assert_allclose(reduced, full, rtol=1e-3, atol=1e-4)


def test_knn_scores_in_the_reduced_guided_space_match_the_full_dimension_ones():
    X, nuisance = encoder_like()
    erased = fit_leace(X, concept_matrix(nuisance)[0]).apply(X)
    basis = fit_distance_basis(erased, 256)
    Z = basis.apply(erased)
    assert Z.shape[1] == 257
    for metric in ("cosine", "l2"):
        full = KnnDetector(k=5, metric=metric).fit(erased).score(erased, exclude_self=True)
        reduced = KnnDetector(k=5, metric=metric).fit(Z).score(Z, exclude_self=True)
        assert spearmanr(full, reduced)[0] > 0.99


def test_narrow_or_high_dimensional_features_keep_their_width_and_the_basis_round_trips():
    X, _ = encoder_like(n=300, d=200)
    assert fit_distance_basis(X, 256) is None
    noise = np.random.default_rng(2).standard_normal((600, 400)).astype(np.float32)
    assert fit_distance_basis(noise, 64) is None  # 64 of 400 directions hold a fifth of isotropic noise
    basis = fit_distance_basis(X, 64)
    again = DistanceBasis.from_arrays(basis.to_arrays("b_"), "b_")
    np.testing.assert_array_equal(again.apply(X), basis.apply(X))
    assert DistanceBasis.from_arrays({}, "b_") is None


def test_detectors_on_the_same_features_share_one_index_per_metric():
    X, _ = encoder_like(n=400, d=32)
    alone = KnnDetector(k=5).fit(X).score(X, exclude_self=True)
    cache = IndexCache()
    knn, knn_ls, lof = KnnDetector(k=5), KnnDetector(k=20, hubness="local_scaling"), LofDetector()
    for detector in (knn, knn_ls, lof):
        detector.indexes = cache
        detector.fit(X)
    assert knn.index_ is knn_ls.index_ and lof.index_ is not knn.index_  # cosine twice, l2 once
    np.testing.assert_allclose(knn.score(X, exclude_self=True), alone, rtol=1e-5)
    other = KnnDetector(k=5)
    other.indexes = cache
    assert other.fit(X.copy()).index_ is not knn.index_  # another matrix, another index
