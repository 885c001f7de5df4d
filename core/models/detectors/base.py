"""The detector interface: reference and unsupervised modes, input checks, the shared PCA.

Two modes:

* reference mode: ``fit`` on known-normal images, ``score`` new images;
* unsupervised mode: ``fit`` on the whole collection, then
  ``score(X, exclude_self=True)`` with the same ``X``, so that no item counts as
  its own neighbour (otherwise every kNN distance list would start with a 0).

Scores are float64, higher = more anomalous.  Detectors without neighbour
lists (iforest, mahalanobis, autoencoder) score the fit data directly in
unsupervised mode: one item barely moves a forest, a mean/covariance or a
network trained on thousands, so leaving it out would cost a refit per item
for no visible change in ranking.
"""

from __future__ import annotations

import numpy as np

from oddscope.core.models.reduction import FeatureReducer
from oddscope.core.models.validation import check_features

MAX_DIMS = 256  # PCA target for the density models: 1280-d covariances are noisy and slow


class Detector:
    """Base class: validates inputs, remembers the fit dimension and size."""

    name = "detector"
    # True where a fit row's unsupervised score (``exclude_self``) differs from scoring it as a new item,
    # because its neighbours must not include itself (kNN, LOF); the others score every row on its own.
    neighbour_based = False
    # Set by a caller fitting several detectors on the same features (core.workflows.scoring): kNN-based ones
    # then share one neighbour index per metric (see oddscope.core.models.knn.IndexCache).
    indexes = None

    def fit(self, X_memory) -> "Detector":
        """Learn what normal looks like from ``X_memory`` (reference set or whole collection)."""
        X = check_features(X_memory, "X_memory")
        self.n_fit_, self.dim_ = X.shape
        self._fit(X)
        return self

    def score(self, X, exclude_self=False) -> np.ndarray:
        """Anomaly score per row of ``X``; ``exclude_self=True``: ``X`` is the fit data itself."""
        if not hasattr(self, "dim_"):
            raise ValueError(f"{type(self).__name__} is not fitted: call fit() first")
        X = check_features(X, dim=self.dim_)
        if exclude_self and len(X) != self.n_fit_:
            raise ValueError(f"exclude_self needs the {self.n_fit_} fit rows as X, got {len(X)} rows")
        return np.asarray(self._score(X, exclude_self), dtype=np.float64)

    def __getstate__(self) -> dict:
        """Pickled (into Ray's object store, a worker) without the shared index cache: it holds whole matrices."""
        state = self.__dict__.copy()
        state.pop("indexes", None)
        return state

    def params(self) -> dict:
        """Constructor arguments (JSON-serialisable): ``make_detector(name, **params())`` rebuilds it."""
        raise NotImplementedError

    def _fit(self, X):
        raise NotImplementedError

    def _score(self, X, exclude_self):
        raise NotImplementedError


def fit_reducer(X, max_dims, seed=0) -> FeatureReducer:
    """PCA to at most ``max_dims`` (rank-limited) dimensions; features no wider are kept as they are.

    Randomized SVD on every row: seconds on 10^6 x 1280 where a full SVD/eigh takes minutes.
    """
    n_components = max_dims if X.shape[1] > max_dims else None
    return FeatureReducer(n_components, normalize=False, seed=seed, svd_solver="randomized", max_fit_rows=None).fit(X)
