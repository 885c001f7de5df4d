"""Active-learning rankers and the simulated user (small synthetic data only)."""

import numpy as np
import pytest
from scipy.stats import kendalltau

from oddscope.core.models.rankers import NeighbourScoreRanker, ProtegeRanker, rank_order
from oddscope.core.models.registry import RANKERS, make_ranker
from oddscope.core.workflows.active_eval import make_synthetic, results_table, simulate

AVAILABLE = [name for name in RANKERS if not RANKERS.entry(name).missing()]
LEARNERS = [name for name in AVAILABLE if name != "plain"]


@pytest.fixture(scope="module")
def small():
    return make_synthetic(n=400, seed=1)


def test_rank_order_is_stable_descending_with_nan_last():
    scores = np.array([1.0, np.nan, 3.0, 3.0, 0.0, np.nan])
    assert rank_order(scores).tolist() == [2, 3, 0, 4, 1, 5]
    assert rank_order(scores, exclude=[2, 4]).tolist() == [3, 0, 1, 5]
    mask = np.array([True, False, False, True, False, False])
    assert rank_order(scores, exclude=mask).tolist() == [2, 4, 1, 5]


def test_make_ranker_rejects_unknown_name():
    with pytest.raises(ValueError, match="unknown ranker"):
        make_ranker("astrology")


@pytest.mark.parametrize(
    "anomaly, idx, labels, message",
    [
        (np.zeros(5), [0], [1.0], "anomaly must have shape"),
        (np.zeros(6), [0], [6.0], "within"),
        (np.zeros(6), [0, 0], [1.0, 2.0], "duplicates"),
        (np.zeros(6), [0, 1], [1.0], "labelled scores"),
        (np.zeros(6), [9], [1.0], r"\[0, 6\)"),
        (np.array([0, 1, 2, 3, 4, np.inf]), [0], [1.0], "infinite"),
    ],
)
def test_fit_rejects_bad_inputs(anomaly, idx, labels, message):
    X = np.random.default_rng(0).normal(size=(6, 3))
    with pytest.raises(ValueError, match=message):
        make_ranker("plain").fit(X, anomaly, idx, labels)


def test_fit_rejects_nan_features_and_scores_need_fit():
    X = np.ones((4, 2))
    X[1, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        make_ranker("plain").fit(X, np.zeros(4))
    with pytest.raises(RuntimeError, match="not fitted"):
        make_ranker("oddscope").scores()
    with pytest.raises(ValueError, match="prepare"):
        make_ranker("plain").fit(None, np.zeros(4))


@pytest.mark.parametrize("name", AVAILABLE)
def test_without_labels_every_ranker_keeps_the_anomaly_order(name, small):
    X, anomaly, _ = small
    ranker = make_ranker(name).fit(X, anomaly, [], [])
    np.testing.assert_array_equal(rank_order(ranker.scores()), rank_order(anomaly))
    assert ranker.relevance() is None


@pytest.mark.parametrize("name", AVAILABLE)
def test_skipped_items_never_come_first(name, small):
    X, anomaly, relevance = small
    anomaly = anomaly.copy()
    top = rank_order(anomaly)[:3]
    anomaly[top] = np.nan  # the three most anomalous were skipped
    idx = rank_order(anomaly)[:8]
    ranker = make_ranker(name).fit(X, anomaly, idx, relevance[idx])
    assert np.isnan(ranker.scores()[top]).all()
    assert set(rank_order(ranker.scores())[-3:]) == set(top)


def test_neighbourscore_formula_on_a_hand_computed_example():
    # 1-D features: A (x=0) scored 5, B (x=10) scored 0; p sits next to A, q next
    # to B and is a bit more anomalous; r and s are far from every label.
    X = np.array([[0.0], [10.0], [0.5], [10.5], [100.0], [101.0]])
    anomaly = np.array([1.0, 1.0, 3.0, 3.2, 2.0, 2.1])
    A, B, p, q, r, s = range(6)
    ranker = NeighbourScoreRanker(random_state=0).fit(X, anomaly, [A, B], [5.0, 0.0])
    u = ranker.relevance()
    # by hand: anomaly rescaled to 0-5 over [1.0, 3.2]; d to the nearest label
    rescaled = 5 * (anomaly - 1.0) / 2.2
    d = np.array([0.0, 0.0, 0.5, 0.5, 90.0, 91.0])
    factor = np.tanh(np.exp(d / d.mean()) - 1 + np.arctanh(0.1 + 0.85 * np.clip(u, 0.1, 5) / 5))
    np.testing.assert_allclose(ranker.scores(), rescaled * factor)
    # at a labelled item the factor is f_u itself: 0.95 for a 5, 0.117 for a 0 (clipped to 0.1, as Astronomaly)
    np.testing.assert_allclose(NeighbourScoreRanker.combine(np.ones(2), [5.0, 0.0], np.zeros(2)), [0.95, 0.117])
    # the factor never exceeds 1: labels can only demote, even for a predicted score above 5
    assert (NeighbourScoreRanker.combine(np.ones(3), [5.5, 5.0, 0.0], np.array([0.0, 1.0, 3.0])) <= 1.0).all()
    scores = ranker.scores()
    assert u[p] > u[q]
    assert scores[p] / rescaled[p] > scores[q] / rescaled[q]  # near the 5 up, near the 0 down
    assert scores[p] > scores[q]  # ... enough to overturn the raw order (q was more anomalous)
    assert scores[s] > scores[r]  # far from labels the raw anomaly order survives
    np.testing.assert_allclose(scores[[r, s]], rescaled[[r, s]], rtol=1e-6)


def test_expected_improvement_formula():
    ei = ProtegeRanker.expected_improvement(np.array([4.0, 3.0, 3.0]), np.array([1.0, 1.0, 2.0]), best=4.0, xi=0.5)
    # mean 4, std 1, best + xi = 4.5: EI = -0.5 Phi(-0.5) + phi(-0.5)
    assert ei[0] == pytest.approx(-0.5 * 0.3085375 + 0.3520653, abs=1e-6)
    assert ei[0] > ei[1]  # higher mean, same std
    assert ei[2] > ei[1]  # same mean, more uncertain


def test_protege_expected_improvement_ordering_on_a_1d_toy():
    X = np.linspace(0.0, 10.0, 51)[:, None]
    labelled = [10, 40]  # x = 2 scored 5, x = 8 scored 0
    ranker = ProtegeRanker().fit(X, np.zeros(51), labelled, [5.0, 0.0])
    ei = ranker.scores()
    assert ei[11] > ei[39]  # next to the 5 beats next to the 0
    assert X[np.argmax(ei), 0] < 5.0
    assert ranker.relevance()[10] > ranker.relevance()[40]


def test_oddscope_is_deterministic_for_a_seed(small):
    X, anomaly, relevance = small
    idx = rank_order(anomaly)[:20]
    a = make_ranker("oddscope", random_state=3).fit(X, anomaly, idx, relevance[idx]).scores()
    b = make_ranker("oddscope", random_state=3).fit(X, anomaly, idx, relevance[idx]).scores()
    np.testing.assert_array_equal(a, b)
    assert kendalltau(a, anomaly).statistic < 0.99  # a real re-ranking, not a constant or the prior


def _positions(scores) -> np.ndarray:
    """Each item's place in the ranking (0 = shown first)."""
    places = np.empty(len(scores), dtype=np.int64)
    places[rank_order(scores)] = np.arange(len(scores))
    return places


@pytest.mark.parametrize("name", LEARNERS)
def test_labels_re_rank_the_unlabelled_items_too(name, small):
    """Labels re-rank the whole collection: the unlabelled items change order among themselves
    (a ranker that moved only the labelled items would keep their anomaly order, Kendall tau 1)."""
    X, anomaly, relevance = small
    idx = rank_order(anomaly)[:3]
    scores = make_ranker(name).fit(X, anomaly, idx, relevance[idx]).scores()
    unlabelled = np.setdiff1d(np.arange(len(anomaly)), idx)
    assert kendalltau(anomaly[unlabelled], scores[unlabelled]).statistic < 0.995


def test_oddscope_sinks_the_unlabelled_look_alikes_of_boring_items(small):
    """The top 3 hold two artefacts (relevance 0) from families of near-duplicates: after labelling them,
    their unlabelled family members sink far; a ranker ignoring the labels moves them by 0 places."""
    X, anomaly, relevance = small
    idx = rank_order(anomaly)[:3]
    scores = make_ranker("oddscope").fit(X, anomaly, idx, relevance[idx]).scores()
    unlabelled = np.setdiff1d(np.arange(len(anomaly)), idx)
    junk = unlabelled[relevance[unlabelled] == 0]
    sunk = _positions(scores)[junk].mean() - _positions(anomaly)[junk].mean()
    assert sunk > 30, sunk  # measured: 66 places


@pytest.mark.parametrize("labels", [[5.0], [0.0, 0.0, 0.0, 0.0], [3.0, 3.0, 3.0, 3.0]])
def test_oddscope_handles_one_label_and_all_same_labels(labels, small):
    X, anomaly, _ = small
    idx = rank_order(anomaly)[: len(labels)]
    ranker = make_ranker("oddscope").fit(X, anomaly, idx, labels)
    scores, rel = ranker.scores(), ranker.relevance()
    assert np.isfinite(scores).all()
    assert rel.min() >= 0.0 and rel.max() <= 5.0
    assert rel[idx] == pytest.approx(labels, abs=1.0)  # a labelled item predicts near its own label


def test_oddscope_moves_neighbours_of_labels(small):
    X, anomaly, relevance = small

    def kin(item, m):
        """The m items of the same class nearest to item (its artefact family / cluster mates)."""
        same = np.setdiff1d(np.flatnonzero(relevance == relevance[item]), item)
        return same[np.argsort(np.linalg.norm(X[same] - X[item], axis=1))[:m]]

    ranker = make_ranker("oddscope").prepare(X)
    before = np.argsort(rank_order(ranker.fit(None, anomaly).scores()))  # item -> position
    artefact = np.flatnonzero(relevance == 0)[0]
    find = np.flatnonzero(relevance == 5)[0]
    after = np.argsort(rank_order(ranker.fit(None, anomaly, [artefact, find], [0.0, 5.0]).scores()))
    assert before[kin(artefact, 3)].max() < 20  # the family started near the top ...
    assert after[kin(artefact, 3)].min() > 100  # ... and one 0 sent it far down
    assert after[kin(find, 2)].max() < before[kin(find, 2)].min()  # one 5 lifted its mates


def test_oddscope_hnsw_graph_matches_the_exact_one(small):
    """Above ``exact_limit`` the graph comes from hnswlib: it must rank like the exact one."""
    X, anomaly, relevance = small
    idx = rank_order(anomaly)[:20]
    exact = make_ranker("oddscope").fit(X, anomaly, idx, relevance[idx])
    approx = make_ranker("oddscope", exact_limit=0).fit(X, anomaly, idx, relevance[idx])
    overlap = np.intersect1d(rank_order(exact.scores())[:40], rank_order(approx.scores())[:40])
    assert overlap.size >= 36


@pytest.mark.parametrize("exact_limit", [0, 100_000], ids=["hnswlib", "exact"])
def test_oddscope_prepare_reports_progress_and_stops_on_cancel(small, monkeypatch, exact_limit):
    from oddscope.core.models import knn
    from oddscope.core.progress import Cancelled, Progress

    monkeypatch.setattr(knn, "_GRAPH_CHUNK", 100)  # several chunks even on small data
    monkeypatch.setattr(knn, "_EXACT_ROWS", 100)
    X = small[0]
    seen = []
    make_ranker("oddscope", exact_limit=exact_limit).prepare(X, Progress(lambda *a: seen.append(a)))
    graph = [(done, total) for stage, done, total in seen if stage == "active: graph"]
    assert len(graph) >= 3 and graph[-1][0] == graph[-1][1]  # steps, ending complete

    def cancel_midway(stage, done, total):
        if stage == "active: graph" and done < total:
            progress.cancel()

    progress = Progress(cancel_midway)
    with pytest.raises(Cancelled):
        make_ranker("oddscope", exact_limit=exact_limit).prepare(X, progress)


def test_simulate_runs_end_to_end(small):
    X, anomaly, relevance = small
    calls = []
    results = simulate(X, anomaly, relevance, batch=5, rounds=3, seeds=2, progress=lambda *a: calls.append(a))
    assert set(results["methods"]) == set(AVAILABLE)
    for r in results["methods"].values():
        curve = r["found_per_round"]
        assert len(curve) == 3 and all(b >= a for a, b in zip(curve, curve[1:]))
        assert r["found_mean"] == curve[-1] <= 15
        assert 0 <= r["top100_mean"] <= results["params"]["n_relevant"]
    assert calls[-1] == ("simulate", 2 * len(AVAILABLE), 2 * len(AVAILABLE))  # methods x seeds
    table = results_table(results)
    assert all(name in table for name in AVAILABLE)


def test_plain_loses_to_every_learning_method():
    X, anomaly, relevance = make_synthetic(n=2000, seed=0)
    found = {
        name: r["found_mean"]
        for name, r in simulate(X, anomaly, relevance, batch=5, rounds=10, seeds=1)["methods"].items()
    }
    for name in LEARNERS:
        assert found[name] > found["plain"], found


def test_oddscope_shows_the_users_finds_first_and_dull_labels_last(small):
    """A labelled item's relevance is its label: the 4-5s lead the ranking, the rest follow every unlabelled item."""
    X, anomaly, relevance = small
    idx = rank_order(anomaly)[:40]
    scores = make_ranker("oddscope").fit(X, anomaly, idx, relevance[idx]).scores()
    finds, dull = idx[relevance[idx] >= 4], idx[relevance[idx] < 4]
    assert finds.size >= 2 and dull.size >= 2
    places = _positions(scores)
    assert set(places[finds]) == set(range(finds.size))
    assert places[dull].min() == len(anomaly) - dull.size


def _share(X, anomaly, relevant, labelled) -> float:
    labels = np.where(relevant[labelled], 5.0, 1.0)
    return make_ranker("oddscope").fit(X, anomaly, labelled, labels).share_


def test_oddscope_gives_the_page_to_the_arm_that_predicted_the_labels():
    """Relevant = the most anomalous items, scattered in every direction: only the anomaly prior predicts them,
    and the learned arm's share falls below half.  Relevant = a tight cluster of ordinary anomaly: only the
    learned relevance predicts them, and its share rises above half."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 16)).astype(np.float32)
    norm = np.linalg.norm(X, axis=1)
    scattered = norm >= np.quantile(norm, 0.95)
    labelled = np.concatenate([rank_order(norm)[:30], rng.choice(600, 30, replace=False)])
    labelled = np.unique(labelled)
    assert make_ranker("oddscope").fit(X, norm, labelled[:0], []).share_ is None
    assert _share(X, norm, scattered, labelled) < 0.4

    X[:30] = 1.5 * np.eye(16)[0] + 0.05 * rng.normal(size=(30, 16))  # a tight cluster, seldom anomalous
    anomaly = rng.random(600)  # an uninformative prior
    cluster = np.arange(600) < 30
    labelled = np.unique(np.concatenate([[0, 1, 2, 3], rng.choice(np.arange(30, 600), 40, replace=False)]))
    assert _share(X, anomaly, cluster, labelled) > 0.6
