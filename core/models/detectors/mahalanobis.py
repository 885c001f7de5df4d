"""Mahalanobis-distance detector (``mahalanobis``)."""

from __future__ import annotations

import numpy as np
from sklearn.covariance import LedoitWolf

from oddscope.core.models.detectors.base import MAX_DIMS, Detector, fit_reducer


class MahalanobisDetector(Detector):
    """Squared Mahalanobis distance to a Gaussian fit of the memory.

    Features above ``max_dims`` are first rotated onto their top principal
    components (not whitened: whitening would make the fit covariance exactly
    the identity, leaving nothing to shrink, and would blow up the noisy tail
    components).  The covariance is Ledoit-Wolf shrunk towards a scaled
    identity, which keeps it invertible and stable when N is not >> D.
    """

    name = "mahalanobis"

    def __init__(self, max_dims=MAX_DIMS):
        self.max_dims = int(max_dims)

    def params(self):
        return {"max_dims": self.max_dims}

    def _fit(self, X):
        if len(X) < 2:
            raise ValueError("the Mahalanobis detector needs at least 2 fit rows")
        self.reducer_ = fit_reducer(X, self.max_dims)
        self.gaussian_ = LedoitWolf().fit(self._reduce(X))

    def _reduce(self, X):
        return self.reducer_.transform(X).astype(np.float64)

    def _score(self, X, exclude_self):
        return self.gaussian_.mahalanobis(self._reduce(X))
