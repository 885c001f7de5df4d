"""Nearest neighbours of items or of arbitrary vectors (e.g. a CLIP text query).

Indexes are caches saved in the project (``project.layout.index``) (atomically, so two
readers cannot corrupt them): the analysis keeps the ones its kNN detectors
built, any other is built on first use, and all are dropped when the analysis
is recomputed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from oddscope.core.models.knn import KnnIndex
from oddscope.core.progress import as_progress
from oddscope.core.project.layout import TEST_IDS
from oddscope.core.project.store import Project
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
        self._indexes: dict[str, KnnIndex] = {}

    @property
    def features(self) -> np.ndarray:
        if self._features is None:
            self._features = space_features(self.project, self.ids, self.space)
        return self._features

    def index(self, metric: str = "cosine") -> KnnIndex:
        if metric not in self._indexes:
            path = self.project.layout.index(self.key, metric, len(self.ids))
            if path.exists():
                self._indexes[metric] = KnnIndex.load(path)
            else:
                index = KnnIndex(metric=metric).build(self.features, self._progress)
                save_index(index, path)
                self._indexes[metric] = index
        return self._indexes[metric]

    def vector(self, item_id: int) -> np.ndarray:
        return self.features[self._row(item_id)]

    def _row(self, item_id: int) -> int:
        item_id = int(item_id)
        if not 0 <= item_id < len(self._row_of) or self._row_of[item_id] < 0:
            raise KeyError(f"item {item_id} has no features (skipped, reference or not analysed)")
        return int(self._row_of[item_id])

    def of_item(self, item_id: int, k: int = 10, metric: str = "cosine") -> pd.DataFrame:
        """The k nearest other items: columns item_id, distance (nearest first)."""
        rows, dists = self.index(metric).query_rows([self._row(item_id)], k, exclude_self=True)
        return pd.DataFrame({"item_id": self.ids[rows[0]], "distance": dists[0]})

    def of_vector(self, vector: np.ndarray, k: int = 10, metric: str = "cosine") -> pd.DataFrame:
        rows, dists = self.index(metric).query(np.asarray(vector, dtype=np.float32)[None, :], k)
        return pd.DataFrame({"item_id": self.ids[rows[0]], "distance": dists[0]})


def save_index(index: KnnIndex, path: Path) -> None:
    """Write ``index`` (and its sidecar) under a temporary name, then rename: readers never see half."""
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_name(f".{os.getpid()}-{path.name}")
    index.save(tmp)
    for produced in tmp.parent.glob(tmp.name + "*"):  # the index and its sidecar
        os.replace(produced, path.parent / (path.name + produced.name[len(tmp.name):]))


def drop_indexes(project: Project) -> None:
    """Forget cached indexes (after the set of analysed items changed)."""
    shutil.rmtree(project.layout.index_dir, ignore_errors=True)
