"""Nearest neighbours of items or of arbitrary vectors (e.g. a CLIP text query).

Indexes are caches saved in the project (``project.layout.index``) (atomically, so two
readers cannot corrupt them): the analysis keeps the ones its kNN detectors
built, any other is built on first use, and all are dropped when the analysis
is recomputed.  Above a memory budget the index holds reduced features and the answers are approximate
(:mod:`oddscope.core.workflows.neighbour_index`); :func:`build_neighbour_index` builds one in a process of its
own (the app's child process), :func:`has_neighbour_index` says whether one is saved.
"""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd

from oddscope.core.models.knn import KnnIndex
from oddscope.core.progress import as_progress
from oddscope.core.project.layout import TEST_IDS
from oddscope.core.project.store import Project
from oddscope.core.workflows.neighbour_index import SearchIndex, build_reduced, needs_reduction
from oddscope.core.workflows.spaces import feature_key, space_features


class Neighbours:
    """k nearest neighbours among a project's analysed (test) items."""

    def __init__(self, project: Project, progress=None, space: str | None = None):
        """``progress`` reports (and can cancel) the first build of each metric's index: minutes at 10^6 items.
        ``space``: search a guided feature space (:mod:`oddscope.core.workflows.spaces`) instead of the raw one."""
        self.project = project
        self.space = space
        self._progress = as_progress(progress)
        self.key = feature_key(project, space)
        self.ids = project.load_array(TEST_IDS)
        if self.ids is None:
            raise ValueError(f"{project.root} has not been analysed yet; run `oddscope index`")
        # item id -> row (-1: none), as an array: a dict of 5M ids held the GIL for a second in the app's worker
        self._row_of = np.full(int(self.ids.max()) + 1 if len(self.ids) else 0, -1, np.int64)
        self._row_of[self.ids] = np.arange(len(self.ids))
        self._features = None
        self._indexes: dict[str, SearchIndex] = {}

    @property
    def features(self) -> np.ndarray:
        """Every analysed item's features, in memory (a full-width index is built from them)."""
        if self._features is None:
            self._features = space_features(self.project, self.ids, self.space)
        return self._features

    def _read(self, rows: np.ndarray) -> np.ndarray:
        """The features of the analysed items at ``rows`` (read from disk, in the searched space)."""
        return space_features(self.project, self.ids[rows], self.space)

    def _path(self, metric: str):
        return self.project.layout.index(self.key, metric, len(self.ids))

    def has_index(self, metric: str = "cosine") -> bool:
        """Whether the index of ``metric`` is loaded or saved: a search then builds nothing."""
        return metric in self._indexes or self._path(metric).exists()

    def index(self, metric: str = "cosine") -> SearchIndex:
        """The saved index of ``metric`` (full or reduced); built and saved when there is none, reduced when the
        full-width one would exceed :data:`~oddscope.core.workflows.neighbour_index.FULL_INDEX_MAX_BYTES`."""
        if metric not in self._indexes:
            path = self._path(metric)
            if path.exists():
                index = SearchIndex.load(path, metric)
            elif len(self.ids) and needs_reduction(len(self.ids), self._read(np.arange(1)).shape[1]):
                index = build_reduced(self._read, len(self.ids), metric, self._progress)
                index.save(path)
            else:
                index = SearchIndex(metric, KnnIndex(metric=metric).build(self.features, self._progress))
                index.save(path)
            self._indexes[metric] = index
        return self._indexes[metric]

    def approximate(self, metric: str = "cosine") -> str | None:
        """What makes ``metric``'s answers approximate ("PCA to 256 dimensions"), None when they are exact
        (as far as hnswlib is): the index is loaded or built to say so."""
        return self.index(metric).approximate

    def vector(self, item_id: int) -> np.ndarray:
        return self._read(np.array([self._row(item_id)]))[0]

    def _row(self, item_id: int) -> int:
        item_id = int(item_id)
        if not 0 <= item_id < len(self._row_of) or self._row_of[item_id] < 0:
            raise KeyError(f"item {item_id} has no features (skipped, reference or not analysed)")
        return int(self._row_of[item_id])

    def of_item(self, item_id: int, k: int = 10, metric: str = "cosine") -> pd.DataFrame:
        """The k nearest other items: columns item_id, distance (nearest first); ``attrs["approximate"]`` says
        what makes them approximate (None: nothing)."""
        row = self._row(item_id)
        index = self.index(metric)
        return self._table(index, *index.query_rows([row], k))

    def of_vector(self, vector: np.ndarray, k: int = 10, metric: str = "cosine") -> pd.DataFrame:
        """The k nearest items of a vector in the searched space; columns and attrs as :meth:`of_item`."""
        index = self.index(metric)
        return self._table(index, *index.query(np.asarray(vector, dtype=np.float32)[None, :], k))

    def _table(self, index: SearchIndex, rows, dists) -> pd.DataFrame:
        table = pd.DataFrame({"item_id": self.ids[rows[0]], "distance": dists[0]})
        table.attrs["approximate"] = index.approximate
        return table


def has_neighbour_index(root, metric: str = "cosine", space: str | None = None) -> bool:
    """Whether the project at ``root`` has the neighbour index of ``metric`` in ``space`` saved (False before
    an analysis): a search would then start at once."""
    with Project.open(root) as project:
        ids = project.load_array(TEST_IDS, mmap=True)
        return ids is not None and project.layout.index(feature_key(project, space), metric, len(ids)).exists()


def build_neighbour_index(root, metric: str = "cosine", space: str | None = None, progress=None) -> str | None:
    """Build and save the neighbour index of ``metric`` in ``space`` of the project at ``root`` (opened
    read-only), unless one is saved: the app runs this in a child process, whose index build cannot stall the
    window.  Reports progress, honours cancel per block; returns what makes the index approximate (or None)."""
    with Project.open(root) as project:
        return Neighbours(project, progress, space=space).approximate(metric)


def drop_indexes(project: Project) -> None:
    """Forget cached indexes (after the set of analysed items changed)."""
    shutil.rmtree(project.layout.index_dir, ignore_errors=True)
