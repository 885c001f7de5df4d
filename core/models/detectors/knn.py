"""kNN distance detectors (``knn``, ``knn-l2``, ``knn-l1``, ``knn-ls``), on :class:`KnnIndex` neighbour lists."""

from __future__ import annotations

import numpy as np

from oddscope.core.models.detectors.base import Detector
from oddscope.core.models.knn import KnnIndex, build_index, in_metric_units, reduced_metric
from oddscope.core.models.reduction import FeatureReducer
from oddscope.core.models.registry import METRICS


class KnnDetector(Detector):
    """DN2: mean distance to the ``k`` nearest normal neighbours.

    ``hubness="local_scaling"`` rescales each distance by the local density of
    both ends (Schnitzer et al. 2012): d_LS(x, y) = 1 - exp(-d² / (σx σy)),
    σ = distance to the k-th neighbour.  In high dimensions some points (hubs)
    sit near the data mean and appear in very many neighbour lists, while
    points of sparse regions appear in none; raw distances then rank every
    member of a loose-but-normal cluster above a genuine outlier next to a
    tight cluster.  Dividing by σx σy evens densities out, so "far" means far
    *relative to the neighbourhood*.  The score is the mean d_LS over x's k
    neighbours, computed from the index's neighbour lists (no N x N matrix).

    ``pca=N`` indexes the features reduced by PCA to ``N`` dimensions, when the index on the full features
    would not fit in memory (hnswlib holds float32 vectors: 5 KB per 1280-d item, 0.5 KB at 128-d).  For
    cosine the rows are L2-normalised before PCA and the index is Euclidean, since centring distorts angles
    but keeps Euclidean distances, which for unit rows give cosine distances back (``|a - b|^2 / 2``).
    Neighbours are then approximate; ``tests/core/test_knn_reduced.py`` measures their recall.
    """

    name = "knn"
    neighbour_based = True

    def __init__(self, k=5, metric="cosine", hubness=None, pca=None):
        if hubness not in (None, "local_scaling"):
            raise ValueError(f"hubness must be None or 'local_scaling', got {hubness!r}")
        METRICS.entry(metric)
        if pca is not None and int(pca) < 1:
            raise ValueError(f"pca must be None or >= 1 dimensions, got {pca!r}")
        self.k, self.metric, self.hubness = int(k), metric, hubness
        self.pca = None if pca is None else int(pca)

    def params(self):
        params = {"k": self.k, "metric": self.metric, "hubness": self.hubness}
        return {**params, "pca": self.pca} if self.pca else params

    def _fit(self, X):
        if self.hubness and len(X) < 2:
            raise ValueError("local scaling needs at least 2 fit rows")
        self.reducer_ = None
        if self.pca:
            self.reducer_ = FeatureReducer(self.pca, normalize=self.metric == "cosine", seed=0,
                                           svd_solver="randomized").fit(X)
        if self.reducer_ is None:
            self.index_ = build_index(self.metric, X, self.indexes)
        else:
            self.index_ = KnnIndex(reduced_metric(self.metric, self.reducer_.pca_ is not None)).build(
                self.index_input(X))
        self.k_ = self.k
        if self.hubness:
            # σ of memory items never counts the item itself, in either mode;
            # queries then use the same (possibly clipped) k for their own σ.
            self.k_ = min(self.k, len(X) - 1)
            self._fit_neighbours = self.index_.query(self.index_input(X), self.k_, exclude_self=True)
            self.sigma_ = self._distances(self._fit_neighbours[1])[:, -1]

    def index_input(self, X) -> np.ndarray:
        """``X`` as the index holds it: reduced by PCA when ``pca`` is set, else as it is."""
        return X if self.reducer_ is None else self.reducer_.transform(X)

    def _distances(self, dist) -> np.ndarray:
        """The index's distances in ``metric`` units (float64): cosine from the Euclidean distances of unit rows
        when the index holds PCA-reduced features."""
        return in_metric_units(dist, self.metric, self.index_.metric)

    def _score(self, X, exclude_self):
        if exclude_self and self.hubness:
            idx, dist = self._fit_neighbours  # already queried for σ: don't search twice
        else:
            idx, dist = self.index_.query(self.index_input(X), self.k_, exclude_self=exclude_self)
        return self.score_neighbours(idx, dist)

    def score_neighbours(self, idx, dist) -> np.ndarray:
        """Scores from each row's ``k_`` nearest fit rows (``idx``) at distances ``dist`` (as the index answers,
        for rows given as :meth:`index_input`), however they were found (here by :meth:`score`, or by queries
        spread over a cluster)."""
        dist = self._distances(dist)
        if not self.hubness:
            return dist.mean(axis=1)
        sigma_x = dist[:, -1:]  # with exclude_self this equals self.sigma_
        scale = np.maximum(sigma_x * self.sigma_[idx], np.finfo(np.float64).tiny)
        return (1.0 - np.exp(-(dist**2) / scale)).mean(axis=1)
