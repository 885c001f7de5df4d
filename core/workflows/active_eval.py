"""Simulated user for comparing active-learning rankers (see :mod:`oddscope.core.models.rankers`).

A ranker is only as good as what a scientist finds with it for a given number
of clicks.  :func:`simulate` replays a labelling session: each round the user
scores the top ``batch`` unlabelled items of the method's current ranking with
their true relevance (0-5), the method refits, and we count the interesting
items (relevance >= ``threshold``) found so far.  :func:`make_synthetic`
builds a small data set with the trap that motivates active learning:
artefacts that are *more* anomalous than the interesting objects.
"""

from __future__ import annotations

import numpy as np

from oddscope.core.models.rankers import rank_order
from oddscope.core.models.registry import RANKERS, make_ranker
from oddscope.core.progress import as_progress

DEFAULT_METHODS = tuple(RANKERS)


def simulate(
    X,
    anomaly,
    relevance,
    methods=DEFAULT_METHODS,
    batch=10,
    rounds=10,
    seeds=5,
    threshold=4,
    top=100,
    progress=None,
    jitter=0.02,
    ranker_kw=None,
) -> dict:
    """Run the simulated labelling session for every method and seed.

    Per seed ``s`` two things vary: every ranker gets ``random_state=s`` (random
    forest, PCA, GP restarts) and the anomaly score gets Gaussian noise of
    ``jitter`` x its standard deviation, a small random initial condition that
    changes the first batches and breaks ties.  ``ranker_kw`` maps a method
    name to extra constructor arguments.  A method whose optional package is
    missing (SNAD's peers without ``coniferest``) is not run: ``"unavailable"``
    maps it to the command that installs it.

    Returns ``{"methods": {name: {"found_mean", "found_std", "top100_mean",
    "top100_std", "found_per_round"}}, "params": {...}}``: ``found`` = labelled
    items with relevance >= ``threshold`` after ``rounds`` rounds;
    ``top100`` = such items among the first ``top`` of the final ranking
    (labelled or not; the key keeps its name whatever ``top`` is);
    ``found_per_round`` = mean ``found`` after each round.
    """
    X = np.asarray(X, dtype=np.float32)
    anomaly = np.asarray(anomaly, dtype=np.float64)
    relevance = np.asarray(relevance, dtype=np.float64)
    if anomaly.shape != (X.shape[0],) or relevance.shape != (X.shape[0],):
        raise ValueError("anomaly and relevance must have one value per row of X")
    if batch < 1 or rounds < 1 or seeds < 1 or top < 1:
        raise ValueError("batch, rounds, seeds and top must be >= 1")
    ranker_kw = ranker_kw or {}
    unavailable = {m: RANKERS.entry(m).missing() for m in methods if RANKERS.entry(m).missing()}
    methods = tuple(m for m in methods if m not in unavailable)
    progress = as_progress(progress)
    total, done = len(methods) * seeds, 0
    spread = np.nanstd(anomaly) if np.isfinite(anomaly).any() else 0.0
    curves = {m: np.zeros((seeds, rounds)) for m in methods}
    tops = {m: np.zeros(seeds) for m in methods}
    for seed in range(seeds):
        noisy = anomaly + np.random.default_rng(seed).normal(0.0, jitter * spread, anomaly.size)
        for method in methods:
            progress.update("simulate", done, total)
            ranker = make_ranker(method, random_state=seed, **ranker_kw.get(method, {})).prepare(X)
            idx = np.empty(0, dtype=np.int64)
            for r in range(rounds):
                ranker.fit(X, noisy, idx, relevance[idx])
                pick = rank_order(ranker.scores(), exclude=idx)[:batch]
                idx = np.concatenate([idx, pick])
                curves[method][seed, r] = np.sum(relevance[idx] >= threshold)
            final = rank_order(ranker.fit(X, noisy, idx, relevance[idx]).scores())
            tops[method][seed] = np.sum(relevance[final[:top]] >= threshold)
            done += 1
    progress.update("simulate", done, total)
    return {
        "methods": {
            m: {
                "found_mean": float(curves[m][:, -1].mean()),
                "found_std": float(curves[m][:, -1].std()),
                "top100_mean": float(tops[m].mean()),
                "top100_std": float(tops[m].std()),
                "found_per_round": curves[m].mean(axis=0).tolist(),
            }
            for m in methods
        },
        "unavailable": unavailable,
        "params": {
            "n_items": int(X.shape[0]),
            "n_relevant": int(np.sum(relevance >= threshold)),
            "batch": batch,
            "rounds": rounds,
            "seeds": seeds,
            "threshold": threshold,
            "top": top,
            "jitter": jitter,
        },
    }


def results_table(results) -> str:
    """A plain-text table of :func:`simulate` results, one row per method."""
    p = results["params"]
    head = (
        f"{p['n_items']} items, {p['n_relevant']} with relevance >= {p['threshold']}; "
        f"{p['rounds']} rounds x {p['batch']} labels, mean +- std over {p['seeds']} seeds"
    )
    cols = f"{'method':<16}{'found':>14}{'top' + str(p['top']):>14}   found per round"
    lines = [head, cols, "-" * len(cols)]
    for name, r in results["methods"].items():
        curve = " ".join(f"{v:.1f}" for v in r["found_per_round"])
        lines.append(
            f"{name:<16}{r['found_mean']:>8.1f} +-{r['found_std']:>4.1f}"
            f"{r['top100_mean']:>8.1f} +-{r['top100_std']:>4.1f}   {curve}"
        )
    lines += [f"{name:<16}not run: {why}" for name, why in results.get("unavailable", {}).items()]
    return "\n".join(lines)


def knn_distance_score(X, k=5, metric="l2"):
    """Distance to the k-th nearest other item (exact, chunked): a simple anomaly score."""
    X = np.asarray(X, dtype=np.float64)
    if metric == "cosine":
        X = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    elif metric != "l2":
        raise ValueError(f"metric must be 'l2' or 'cosine', got {metric!r}")
    sq = (X**2).sum(1)
    out = np.empty(X.shape[0])
    for start in range(0, X.shape[0], 4096):
        rows = np.arange(start, min(start + 4096, X.shape[0]))
        d2 = sq[rows, None] + sq[None, :] - 2.0 * X[rows] @ X.T
        d2[np.arange(rows.size), rows] = np.inf
        kth_d2 = np.maximum(np.partition(d2, k - 1, axis=1)[:, k - 1], 0.0)
        # unit vectors: |a - b|^2 = 2 (1 - cos), so cosine reports 1 - cos
        out[rows] = kth_d2 / 2.0 if metric == "cosine" else np.sqrt(kth_d2)
    return out


def make_synthetic(n=2000, dim=64, seed=0):
    """(X, anomaly, relevance) with artefacts more anomalous than the interesting items.

    Normals (96 %, relevance 1) are standard Gaussian.  Artefacts (2 %,
    relevance 0) come in tight families of 5 near-duplicates (like a repeated
    detector defect) far out: with k=5 each one's 5th neighbour lies outside its
    family, so they hold the highest kNN distances.  Interesting items (2 %,
    relevance 5) form 3 wider clusters closer in, whose anomaly ranks interleave
    with the tail of the normals: the plain ranking shows every artefact first
    and then finds the interesting ones slowly.
    ``anomaly`` = Euclidean distance to the 5th nearest neighbour.
    """
    rng = np.random.default_rng(seed)
    n_rare = max(int(round(0.02 * n)), 5)
    n_normal = n - 2 * n_rare
    if n_normal < 10:
        raise ValueError(f"n={n} is too small for a synthetic set")

    def cluster(size, radius, spread):
        centre = rng.normal(size=dim)
        return radius * centre / np.linalg.norm(centre) + spread * rng.normal(size=(size, dim))

    parts = [rng.normal(size=(n_normal, dim))]
    relevance = [np.ones(n_normal)]
    for family in np.array_split(np.arange(n_rare), -(-n_rare // 5)):  # families of <= 5
        parts.append(cluster(family.size, 12.0, 0.5))
        relevance.append(np.zeros(family.size))
    for group, spread in zip(np.array_split(np.arange(n_rare), 3), (0.85, 0.95, 1.05)):
        parts.append(cluster(group.size, 9.0, spread))
        relevance.append(np.full(group.size, 5.0))
    perm = rng.permutation(n)
    X = np.vstack(parts).astype(np.float32)[perm]
    relevance = np.concatenate(relevance)[perm]
    return X, knn_distance_score(X, k=5), relevance
