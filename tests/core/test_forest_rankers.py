"""SNAD's peers (AAD forest, PineForest from coniferest): optional, listed with their install command when absent."""

import importlib.util

import numpy as np
import pytest

from oddscope.core.models.rankers import rank_order
from oddscope.core.models.registry import RANKERS, make_ranker
from oddscope.core.workflows.active_eval import make_synthetic, results_table, simulate

PEERS = ("aad", "pineforest")


@pytest.fixture
def without_coniferest(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "coniferest" else real(name, *a))


def test_without_coniferest_the_peers_are_listed_with_the_install_command_and_never_crash(without_coniferest):
    assert set(RANKERS.unavailable()) == set(PEERS)
    for name in PEERS:
        with pytest.raises(ValueError, match=r"pip install 'oddscope\[peers\]'"):
            make_ranker(name)
    X, anomaly, relevance = make_synthetic(n=200, seed=2)
    results = simulate(X, anomaly, relevance, methods=("plain", *PEERS), batch=5, rounds=2, seeds=1)
    assert list(results["methods"]) == ["plain"]
    assert set(results["unavailable"]) == set(PEERS)
    assert "not run: aad needs the package 'coniferest'" in results_table(results)


@pytest.mark.skipif(importlib.util.find_spec("coniferest") is None, reason="coniferest not installed")
@pytest.mark.parametrize("name", PEERS)
def test_peers_learn_from_labels_and_are_reproducible(name):
    X, anomaly, relevance = make_synthetic(n=400, seed=1)
    idx = rank_order(anomaly)[:20]
    ranker = make_ranker(name, random_state=4).fit(X, anomaly, idx, relevance[idx])
    again = make_ranker(name, random_state=4).fit(X, anomaly, idx, relevance[idx])
    np.testing.assert_array_equal(ranker.scores(), again.scores())
    assert not np.array_equal(rank_order(ranker.scores()), rank_order(anomaly))
    # the labelled interesting items score above the labelled artefacts (relevance 5 against 0)
    scores = ranker.scores()
    assert scores[idx[relevance[idx] == 5]].mean() > scores[idx[relevance[idx] == 0]].mean()
