"""Local-outlier-factor detector (``lof``), on :class:`KnnIndex` neighbour lists."""

from __future__ import annotations

import numpy as np

from oddscope.core.models.detectors.base import Detector
from oddscope.core.models.knn import build_index
from oddscope.core.models.registry import METRICS


class LofDetector(Detector):
    """Local outlier factor: a point's kNN density relative to its neighbours' densities.

    Same definition as scikit-learn's ``LocalOutlierFactor`` (unsupervised mode
    gives ``-negative_outlier_factor_``, reference mode ``novelty=True``
    scores), but neighbours come from :class:`KnnIndex`, so it scales to 10^6
    items where sklearn's exact neighbour search does not.
    """

    name = "lof"
    neighbour_based = True

    def __init__(self, k=20, metric="l2"):
        METRICS.entry(metric)
        self.k, self.metric = int(k), metric

    def params(self):
        return {"k": self.k, "metric": self.metric}

    def _fit(self, X):
        if len(X) < 2:
            raise ValueError("LOF needs at least 2 fit rows")
        self.index_ = build_index(self.metric, X, self.indexes)
        idx, dist = self.index_.query(X, self.k, exclude_self=True)
        self.k_distance_ = dist[:, -1].astype(np.float64)
        self.lrd_ = self._local_reachability_density(idx, dist)
        self.fit_scores_ = self._lof(idx, self.lrd_)

    def _local_reachability_density(self, idx, dist):
        reach = np.maximum(dist.astype(np.float64), self.k_distance_[idx])
        return 1.0 / (reach.mean(axis=1) + 1e-10)  # sklearn's guard against duplicates

    def _lof(self, idx, lrd):
        return self.lrd_[idx].mean(axis=1) / lrd

    def _score(self, X, exclude_self):
        if exclude_self:
            return self.fit_scores_
        k = min(self.k, self.n_fit_ - 1)  # the same neighbourhood size as the fit points
        idx, dist = self.index_.query(X, k)
        return self._lof(idx, self._local_reachability_density(idx, dist))
