"""The options that ``benchmarks/detection_options.py`` measures do what its tables claim."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from detection_options import ProjectedKnn, ReferencePCA, flip_average, with_stages  # noqa: E402


def test_pca_is_fitted_on_the_reference_only():
    rng = np.random.default_rng(0)
    reference, test = rng.normal(size=(40, 30)), rng.normal(size=(20, 30))
    detector = ProjectedKnn(8, whiten=True).fit(reference)
    before = detector.score(test)
    outlier = np.vstack([test, 100 * rng.normal(size=(1, 30))])
    assert np.allclose(detector.score(outlier)[:-1], before)  # a test item never moves the projection
    normalised = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    assert np.allclose(detector.pca.mean_, normalised.mean(axis=0))


def test_whitening_shrinks_small_variance_directions():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 6)) * np.array([10, 5, 2, 1, 1e-4, 1e-6])
    pca = ReferencePCA(6, whiten=True, shrink=0.1).fit(X)
    variance = pca.transform(X).var(axis=0, ddof=1)
    assert variance.max() <= 1.0 + 1e-6  # shrinkage: never above unit variance ...
    assert variance[:2].min() > 0.9 and variance[-2:].max() < 0.01  # ... and the noise directions stay small
    assert ReferencePCA(64, whiten=False).fit(X[:10]).components_.shape == (6, 6)  # rank-limited
    assert ReferencePCA(64, whiten=False).fit(X[:4]).components_.shape == (3, 6)


def test_flip_averages_the_image_and_its_horizontal_mirror():
    images = np.arange(2 * 3 * 4 * 3, dtype=np.uint8).reshape(2, 3, 4, 3)

    def first_row(batch):  # a stand-in encoder: the red values of each image's top row
        return batch[:, 0, :, 0].astype(np.float32)

    expected = (images[:, 0, :, 0] + images[:, 0, ::-1, 0]) / 2
    assert np.allclose(flip_average(first_row, images), expected)


def test_stage_features_widen_the_final_features_each_normalised():
    rng = np.random.default_rng(2)
    final, stage = rng.normal(size=(5, 1280)) * 7, rng.normal(size=(5, 320)) * 0.01
    X = with_stages(final, [stage])
    assert X.shape == (5, 1600)
    assert np.allclose(np.linalg.norm(X[:, :1280], axis=1), 1) and np.allclose(np.linalg.norm(X[:, 1280:], axis=1), 1)


@pytest.mark.parametrize("whiten", [False, True])
def test_projected_knn_scores_an_outlier_highest(whiten):
    rng = np.random.default_rng(3)
    centre = rng.normal(size=50)
    reference = centre + 0.1 * rng.normal(size=(60, 50))
    test = np.vstack([centre + 0.1 * rng.normal(size=(10, 50)), rng.normal(size=(1, 50))])
    assert ProjectedKnn(16, whiten).fit(reference).score(test).argmax() == 10
