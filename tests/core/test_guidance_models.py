"""Guidance transforms and probes on synthetic data: LEACE against the concept-erasure package, probes at chance."""

import numpy as np
import pytest

from oddscope.core.models.guidance.erasure import SubspaceTransform, concept_matrix, fit_leace, fit_relevant
from oddscope.core.models.guidance.probes import probe_nuisance


def _nuisance_data(n=1200, d=32, seed=0):
    """Gaussian features where a binary nuisance shifts two directions and an independent signal a third."""
    rng = np.random.default_rng(seed)
    nuisance = rng.random(n) < 0.3
    signal = rng.random(n) < 0.5
    X = rng.standard_normal((n, d)).astype(np.float32)
    X[:, 0] += 2.5 * nuisance
    X[:, 1] -= 1.5 * nuisance
    X[:, 2] += 2.5 * signal
    return X, nuisance, signal


@pytest.mark.parametrize("shrinkage", [False, True])
@pytest.mark.parametrize("kind", ["categorical", "continuous"])
def test_leace_matches_the_concept_erasure_package(shrinkage, kind):
    torch = pytest.importorskip("torch")
    from concept_erasure import LeaceFitter

    rng = np.random.default_rng(3)
    X = (rng.standard_normal((500, 24)) @ rng.standard_normal((24, 24))).astype(np.float32)
    if kind == "categorical":
        Z = np.eye(3)[rng.integers(0, 3, 500)]
        X += 0.8 * Z @ rng.standard_normal((3, 24)).astype(np.float32)
    else:
        Z = rng.standard_normal((500, 1))
        X += 0.8 * Z @ rng.standard_normal((1, 24)).astype(np.float32)
    ours = fit_leace(X, Z, shrinkage=shrinkage).apply(X)
    fitter = LeaceFitter.fit(torch.from_numpy(X).double(), torch.from_numpy(Z).double(), shrinkage=shrinkage,
                             constrain_cov_trace=False)
    theirs = fitter.eraser(torch.from_numpy(X).double()).numpy()
    np.testing.assert_allclose(ours, theirs, atol=2e-4, rtol=1e-4)


def test_leace_drives_a_linear_probe_to_chance_and_keeps_an_orthogonal_signal():
    X, nuisance, signal = _nuisance_data()
    before = probe_nuisance(X, nuisance)
    assert before["kind"] == "categorical"
    assert before["probe_linear"] > 0.9 > before["probe_chance"] + 0.15
    erased = fit_leace(X, concept_matrix(nuisance)[0]).apply(X)
    after = probe_nuisance(erased, nuisance)
    assert after["probe_linear"] <= after["probe_chance"] + 0.03
    assert after["probe_chance"] == pytest.approx(before["probe_chance"])
    # the independent signal is as predictable as before
    signal_before = probe_nuisance(X, signal, nonlinear=False)["probe_linear"]
    signal_after = probe_nuisance(erased, signal, nonlinear=False)["probe_linear"]
    assert signal_after > 0.85 and abs(signal_after - signal_before) < 0.03
    # directions the nuisance never touched are left exactly as they were (up to float error)
    np.testing.assert_allclose(np.corrcoef(erased[:, 2], X[:, 2])[0, 1], 1.0, atol=0.01)


def test_leace_on_a_continuous_nuisance_leaves_no_linear_r2():
    rng = np.random.default_rng(1)
    level = rng.normal(size=1000)
    X = rng.standard_normal((1000, 16)).astype(np.float32)
    X[:, :3] += np.outer(level, [1.0, -0.5, 0.7]).astype(np.float32)
    Z, kind = concept_matrix(level)
    assert kind == "continuous"
    before = probe_nuisance(X, level, nonlinear=False)
    after = probe_nuisance(fit_leace(X, Z).apply(X), level, nonlinear=False)
    assert before["probe_linear"] > 0.5
    assert after["probe_linear"] < 0.02 and after["probe_chance"] == 0.0


def test_features_that_never_vary_stay_exactly_as_they_were():
    """Encoders have dead units; rounding must not write the nuisance into them (a standardising probe reads it)."""
    X, nuisance, _ = _nuisance_data(n=400, d=16)
    X = np.hstack([X, np.zeros((len(X), 4), np.float32), np.full((len(X), 1), 0.5, np.float32)])
    erased = fit_leace(X, concept_matrix(nuisance)[0]).apply(X)
    np.testing.assert_array_equal(erased[:, 16:], X[:, 16:])


def test_transform_round_trips_through_plain_arrays():
    X, nuisance, _ = _nuisance_data(n=300, d=8)
    transform = fit_leace(X, concept_matrix(nuisance)[0])
    again = SubspaceTransform.from_arrays(transform.to_arrays())
    np.testing.assert_array_equal(again.apply(X), transform.apply(X))
    assert transform.rank == 1


def test_relevant_only_keeps_the_directions_of_the_users_interest():
    X, nuisance, signal = _nuisance_data()
    kept = fit_relevant(X, signal).apply(X)
    assert probe_nuisance(kept, signal, nonlinear=False)["probe_linear"] > 0.85
    nuisance_kept = probe_nuisance(kept, nuisance, nonlinear=False)["probe_linear"]
    assert nuisance_kept < probe_nuisance(X, nuisance, nonlinear=False)["probe_linear"] - 0.15
    weighted = fit_relevant(X, signal, weight=3.0).apply(X)
    assert weighted.shape == X.shape and np.linalg.norm(weighted - X) > 0
    with pytest.raises(ValueError, match="both"):
        fit_relevant(X, np.ones(len(X), bool))


def test_concept_matrix_refuses_a_single_value():
    with pytest.raises(ValueError, match="single value"):
        concept_matrix(["mono"] * 5)
    Z, kind = concept_matrix(["mono", "poly", "mono"])
    assert kind == "categorical" and Z.tolist() == [[1, 0], [0, 1], [1, 0]]
