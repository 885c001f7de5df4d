"""Scoring on the cluster: the kNN detectors' neighbour queries spread over Ray tasks.

A kNN detector's index is built once, here, as on one machine; the index and the features are put in Ray's
object store once, and tasks query blocks of rows (one hnswlib thread each: Ray gives each task a core).
hnswlib answers a query the same whatever the thread or process asking, so the scores are those of the
single path.  The other detectors (and the local-scaling kNN, whose neighbours are found while fitting)
score as on one machine.
"""

from __future__ import annotations

import numpy as np

from oddscope.core.models.detectors.knn import KnnDetector
from oddscope.core.models.knn import KnnIndex
from oddscope.core.workflows.cluster.session import require_ray

ROWS_PER_TASK = 20_000  # queries per task: big enough that deserialising the index is a small share
TASKS_PER_CPU = 2  # at least this many tasks per core of the cluster, so a slow node delays little


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
    cpus = int(ray.cluster_resources().get("CPU", 1))
    n_blocks = max(1, min(len(X), max(TASKS_PER_CPU * cpus, -(-len(X) // ROWS_PER_TASK))))
    bounds = np.linspace(0, len(X), n_blocks + 1).astype(int)
    index_ref, x_ref = ray.put(index), ray.put(X)
    task = ray.remote(num_cpus=1)(_query_block)
    parts = ray.get([task.remote(index_ref, x_ref, int(a), int(b), k, exclude_self)
                     for a, b in zip(bounds[:-1], bounds[1:])])
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _query_block(index: KnnIndex, X: np.ndarray, start: int, stop: int, k: int, exclude_self: bool):
    """A Ray task: neighbours of rows ``start:stop`` of ``X`` (never themselves, with ``exclude_self``)."""
    index.num_threads = 1
    self_ids = np.arange(start, stop) if exclude_self else None
    return index.query_excluding(X[start:stop], k, self_ids)
