"""Scoring on the cluster: the kNN detectors' neighbour queries spread over Ray tasks.

A kNN detector's index is built once, here, as on one machine; the index and the features are put in Ray's
object store once, and tasks query blocks of rows.  Each task takes a node's cores and queries with as many
hnswlib threads, so a node holds one copy of the index at a time (an index of 10^6 256-d items is about
1.2 GB; one per core would not fit).  hnswlib answers a query the same whatever the thread or process
asking, so the scores are those of the single path.  The other detectors (and the local-scaling kNN, whose neighbours are found while fitting)
score as on one machine.
"""

from __future__ import annotations

import numpy as np

from oddscope.core.models.detectors.knn import KnnDetector
from oddscope.core.models.knn import KnnIndex
from oddscope.core.workflows.cluster.session import cpu_nodes, require_ray

TASKS_PER_NODE = 2  # blocks per node: a slow node delays little, and each task loads the index only once


def score_on_cluster(detector, X: np.ndarray, exclude_self: bool) -> np.ndarray:
    """``detector.score(X, exclude_self)``, with a kNN detector's neighbour queries run on the cluster."""
    spreadable = (isinstance(detector, KnnDetector) and detector.index_.metric != "l1"
                  and not (exclude_self and detector.hubness))
    if not spreadable:
        return detector.score(X, exclude_self)
    indices, distances = query_on_cluster(detector.index_, X, detector.k_, exclude_self)
    return detector.score_neighbours(indices, distances)


def query_on_cluster(index: KnnIndex, X: np.ndarray, k: int, exclude_self: bool = False):
    """``index.query(X, k, exclude_self)`` in Ray tasks over blocks of rows -> ``(indices, distances)``."""
    ray = require_ray()
    X = np.ascontiguousarray(X, dtype=np.float32)
    nodes, cores = cpu_nodes(ray)
    bounds = np.linspace(0, len(X), max(1, min(len(X), TASKS_PER_NODE * nodes)) + 1).astype(int)
    index_ref, x_ref = ray.put(index), ray.put(X)
    task = ray.remote(num_cpus=cores)(_query_block)
    parts = ray.get([task.remote(index_ref, x_ref, int(a), int(b), k, exclude_self, cores)
                     for a, b in zip(bounds[:-1], bounds[1:])])
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _query_block(index: KnnIndex, X: np.ndarray, start: int, stop: int, k: int, exclude_self: bool,
                 threads: int):
    """A Ray task: neighbours of rows ``start:stop`` of ``X`` (never themselves, with ``exclude_self``)."""
    index.num_threads = threads
    self_ids = np.arange(start, stop) if exclude_self else None
    return index.query_excluding(X[start:stop], k, self_ids)
