"""The non-linear nuisance head on synthetic data: a nuisance LEACE cannot see (the radius of two directions)."""

import numpy as np
import pytest

from oddscope.core.models.detectors.knn import KnnDetector
from oddscope.core.models.guidance.erasure import concept_matrix, fit_leace
from oddscope.core.models.guidance.head import HeadTransform, fit_head, nuisance_classes
from oddscope.core.models.guidance.probes import probe_nuisance
from oddscope.core.models.metrics import detection_metrics
from oddscope.core.progress import Cancelled, Progress

pytest.importorskip("torch")


def _radius_data(n=1200, d=16, n_outliers=12, seed=0):
    """Gaussian features where a binary nuisance sets the radius of directions 0 and 1 (1 or 3: the same mean,
    so no linear probe sees it), and a few planted outliers lie far out along one of the other directions."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    big = rng.random(n) < 0.5
    angle = rng.uniform(0, 2 * np.pi, n)
    radius = np.where(big, 3.0, 1.0) + rng.normal(0, 0.2, n)
    X[:, 0], X[:, 1] = radius * np.cos(angle), radius * np.sin(angle)
    outliers = np.zeros(n, dtype=bool)
    rows = rng.choice(n, n_outliers, replace=False)
    outliers[rows] = True
    X[rows, rng.integers(4, d, n_outliers)] += rng.choice([-7.0, 7.0], n_outliers)
    return X, np.where(big, "big", "small").astype(object), outliers


def _knn_auroc(X, outliers) -> float:
    scores = KnnDetector().fit(X).score(X, exclude_self=True)
    return detection_metrics(scores, outliers, ks=())["auroc"]


@pytest.fixture(scope="module")
def radius_case():
    X, values, outliers = _radius_data()
    Z, kind = concept_matrix(values)
    return X, values, outliers, fit_head(X, Z, kind)


def test_the_head_forgets_a_nuisance_leace_leaves_and_keeps_the_anomalies(radius_case):
    X, values, outliers, head = radius_case
    leace = fit_leace(X, concept_matrix(values)[0]).apply(X)
    erased = probe_nuisance(leace, values)
    assert erased["probe_linear"] < erased["probe_chance"] + 0.05  # LEACE does what it promises...
    assert erased["probe_nonlinear"] > erased["probe_chance"] + 0.25  # ...but an MLP still reads the radius
    guided = head.apply(X)
    assert guided.shape == (len(X), head.rank) and guided.dtype == np.float32
    after = probe_nuisance(guided, values)
    assert after["probe_nonlinear"] < after["probe_chance"] + 0.1
    assert after["probe_linear"] < after["probe_chance"] + 0.1
    assert _knn_auroc(guided, outliers) >= _knn_auroc(X, outliers) - 0.1  # measured: 0.66 against 0.74


def test_the_head_round_trips_through_plain_arrays(radius_case):
    X, _, _, head = radius_case
    again = HeadTransform.from_arrays(head.to_arrays())
    np.testing.assert_array_equal(again.apply(X[:50]), head.apply(X[:50]))


def test_training_is_seeded_and_a_continuous_nuisance_is_forgotten_by_quantile_bins():
    X, _, _ = _radius_data(n=300)
    Z, kind = concept_matrix(np.hypot(X[:, 0], X[:, 1]))
    assert kind == "continuous"
    classes = nuisance_classes(Z, kind)
    assert set(classes.tolist()) == set(range(8)) and np.bincount(classes).min() >= 300 // 8 - 1
    first, second = (fit_head(X, Z, kind, max_steps=20, seed=3).apply(X) for _ in range(2))
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, fit_head(X, Z, kind, max_steps=20, seed=4).apply(X))


def test_progress_reports_the_steps_and_cancel_stops_training():
    X, values, _ = _radius_data(n=200)
    Z, kind = concept_matrix(values)
    seen = []
    progress = Progress(lambda stage, done, total: seen.append((stage, done, total)))
    fit_head(X, Z, kind, max_steps=60, progress=progress)
    assert seen[0] == ("nuisance head", 1, 60) and seen[-1] == ("nuisance head", 60, 60)
    progress = Progress(lambda stage, done, total: progress.cancel() if done > 1 else None)
    with pytest.raises(Cancelled):
        fit_head(X, Z, kind, max_steps=200, progress=progress)
