"""Scoring a feature matrix with every detector and storing the per-item arrays: one owner for both the raw
features (:func:`oddscope.core.workflows.pipeline.analyse`) and each guided feature space
(:mod:`oddscope.core.workflows.guidance`), so a space's scores are made exactly as the raw ones."""

from __future__ import annotations

import time

import numpy as np

from oddscope.core.models.knn import IndexCache
from oddscope.core.models.registry import make_detector
from oddscope.core.progress import as_progress
from oddscope.core.project.layout import score_array, space_name
from oddscope.core.project.store import Project
from oddscope.core.workflows.neighbour_index import SearchIndex

RUN_FACTS = ("mode", "fit_rows")  # recorded with a detector run's params, but not constructor arguments


def score_detectors(project: Project, detectors: dict, X: np.ndarray, memory: np.ndarray, test_ids: np.ndarray,
                    key: str, mode: str, space: str | None = None, run=None, progress=None,
                    timings=None) -> None:
    """Fit each of ``detectors`` (``{name: constructor arguments}``) on ``memory``, score ``X`` (the features of
    ``test_ids``) and save ``score_<name>[@space]``; in unsupervised mode keep the kNN indexes they built.

    ``key`` is the feature key the runs are recorded under (the encoder's, qualified by the space);
    ``run(detector, X, memory, exclude_self) -> scores`` replaces :func:`fit_and_score` (the Ray cluster's:
    spread queries, a fit sample).  A detector fitted on fewer rows than ``memory`` has them recorded
    (``fit_rows``).  kNN-based detectors share one neighbour index per metric (:class:`IndexCache`).
    """
    progress = as_progress(progress)
    timings = {} if timings is None else timings
    n = project.n_items
    indexes = IndexCache()
    for step, (name, kwargs) in enumerate(detectors.items()):
        progress.update("scores", step, len(detectors))
        t0 = time.perf_counter()
        detector = make_detector(name, **kwargs)
        detector.indexes = indexes
        values = (run or fit_and_score)(detector, X, memory, mode == "unsupervised")
        array = score_array(space_name(name, space))
        project.save_array(array, scatter(values, test_ids, n))
        if mode == "unsupervised":
            keep_index(project, key, detector, len(test_ids))
        seconds = time.perf_counter() - t0
        sampled = {"fit_rows": detector.n_fit_} if detector.n_fit_ < len(memory) else {}
        project.record_run("detector", space_name(name, space), {**detector.params(), "mode": mode, **sampled}, key,
                           seconds)
        timings[array] = seconds
    progress.update("scores", len(detectors), len(detectors))


def constructor_params(params: dict) -> dict:
    """A detector run's recorded params without what :func:`score_detectors` adds about the run (the mode, the
    rows of a fit sample): the arguments that make the same detector again."""
    return {k: v for k, v in params.items() if k not in RUN_FACTS}


def fit_and_score(detector, X: np.ndarray, memory: np.ndarray, exclude_self: bool) -> np.ndarray:
    """Fit ``detector`` on ``memory`` and score ``X`` in this process (``exclude_self``: ``X`` is ``memory``)."""
    return detector.fit(memory).score(X, exclude_self=exclude_self)


def keep_index(project: Project, key: str, detector, n: int) -> None:
    """Save the kNN index a detector built over the analysed items: the app's and the CLI's neighbour
    searches then start at once instead of building it again (minutes at 10^6 items).  An index of PCA-reduced
    features (``index --knn-pca``) is kept with its reducer, which queries then go through; an index of a fit
    sample answers other questions: it is not kept."""
    index = getattr(detector, "index_", None)
    if index is None or index.metric == "l1":  # exact L1 keeps the matrix itself: not worth a copy
        return
    if detector.n_fit_ != n:
        return
    path = project.layout.index(key, detector.metric, n)
    if not path.exists():
        SearchIndex(detector.metric, index, getattr(detector, "reducer_", None)).save(path)


def scatter(values: np.ndarray, ids: np.ndarray, n: int, fill=np.nan) -> np.ndarray:
    """Per-item array of length ``n`` (every item id), ``fill`` where an item has no value."""
    values = np.asarray(values)
    dtype = np.int32 if fill == -1 else np.float32
    out = np.full((n,) + values.shape[1:], fill, dtype=dtype)
    out[ids] = values
    return out
