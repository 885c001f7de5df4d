"""Scoring on the cluster: kNN queries spread over Ray tasks; the other detectors fitted on a sample.

A kNN detector's index is built once, here, as on one machine; the index and the features are put in Ray's
object store once, and tasks query blocks of rows.  Each task takes a node's cores and queries with as many
hnswlib threads, so a node holds one copy of the index at a time (an index of 10^6 256-d items is about
1.2 GB; one per core would not fit).  hnswlib answers a query the same whatever the thread or process
asking, so the scores are those of the single path.

The other detectors (isolation forest, LOF, Mahalanobis, the autoencoder, and the kNN variants whose
neighbours are found while fitting: local scaling, exact L1) are fitted on a seeded sample of
:data:`~.blocks.FIT_SAMPLE` rows (:func:`~.blocks.sample_rows`), and the fitted model scores every item in
parallel blocks.  A block's scores are those of scoring all rows in one go with the same model (each row is
scored on its own).  In unsupervised mode the sampled items are scored as a single machine scores its fit
rows (never their own neighbour), the others as new items against the sample; a collection no larger than
the sample is fitted whole, so its scores are the single path's.
"""

from __future__ import annotations

import numpy as np

from oddscope.core.models.detectors.knn import KnnDetector
from oddscope.core.models.knn import KnnIndex
from oddscope.core.workflows.cluster.blocks import FIT_SAMPLE, map_blocks, sample_rows
from oddscope.core.workflows.cluster.session import cpu_nodes, require_ray

TASKS_PER_NODE = 2  # query blocks per node: a slow node delays little, and each task loads the index only once


class ClusterScoring:
    """``scoring(detector, X, memory, exclude_self)``: fit ``detector`` and score ``X`` on the cluster (the
    ``run`` of :func:`oddscope.core.workflows.scoring.score_detectors`)."""

    def __init__(self, fit_sample: int = FIT_SAMPLE, seed: int = 0):
        self.fit_sample, self.seed = int(fit_sample), seed

    def __call__(self, detector, X: np.ndarray, memory: np.ndarray, exclude_self: bool) -> np.ndarray:
        rows = None if _spreads_queries(detector, exclude_self) else sample_rows(len(memory), self.fit_sample,
                                                                                 self.seed)
        if rows is None:
            detector.fit(memory)
            return score_on_cluster(detector, X, exclude_self)
        detector.fit(memory[rows])
        values = score_in_blocks(detector, X)
        if exclude_self:  # X is the memory: the sampled items are the fit rows
            values[rows] = detector.score(X[rows], exclude_self=True)
        return values


def score_on_cluster(detector, X: np.ndarray, exclude_self: bool) -> np.ndarray:
    """``detector.score(X, exclude_self)`` on the cluster: a kNN detector's neighbour queries as tasks, other
    detectors in blocks (a detector whose fit rows score apart, ``neighbour_based``, scores them here)."""
    if _spreads_queries(detector, exclude_self):
        indices, distances = query_on_cluster(detector.index_, detector.index_input(X), detector.k_, exclude_self)
        return detector.score_neighbours(indices, distances)
    if exclude_self and detector.neighbour_based:
        return detector.score(X, exclude_self=True)
    return score_in_blocks(detector, X)


def score_in_blocks(detector, X: np.ndarray) -> np.ndarray:
    """``detector.score(X)`` (rows as new items) in Ray tasks over blocks of rows."""
    return np.concatenate(map_blocks(_score_block, detector, np.ascontiguousarray(X)))


def query_on_cluster(index: KnnIndex, X: np.ndarray, k: int, exclude_self: bool = False):
    """``index.query(X, k, exclude_self)`` in Ray tasks over blocks of rows -> ``(indices, distances)``."""
    nodes, cores = cpu_nodes(require_ray())
    parts = map_blocks(_query_block, index, np.ascontiguousarray(X, dtype=np.float32), k, exclude_self, cores,
                       num_cpus=cores, blocks=TASKS_PER_NODE * nodes)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _spreads_queries(detector, exclude_self: bool) -> bool:
    """Whether ``detector`` is fitted on every row and scored by neighbour queries spread over the cluster:
    a hnswlib kNN detector, unless its fit already found the neighbours (local scaling, unsupervised)."""
    return (isinstance(detector, KnnDetector) and detector.metric != "l1"
            and not (exclude_self and detector.hubness))


def _score_block(detector, X: np.ndarray, start: int, stop: int) -> np.ndarray:
    """A Ray task: scores of rows ``start:stop`` of ``X`` as new items."""
    return detector.score(X[start:stop])


def _query_block(index: KnnIndex, X: np.ndarray, start: int, stop: int, k: int, exclude_self: bool,
                 threads: int):
    """A Ray task: neighbours of rows ``start:stop`` of ``X`` (never themselves, with ``exclude_self``)."""
    index.num_threads = threads
    self_ids = np.arange(start, stop) if exclude_self else None
    return index.query_excluding(X[start:stop], k, self_ids)
