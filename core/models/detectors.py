"""Anomaly detectors on image features, all behind one fit/score interface.

Which detector works best depends on the collection, so users run several and
compare them side by side (see :mod:`oddscope.core.models.metrics`).  Two modes:

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

from contextlib import contextmanager
from functools import partial

import numpy as np
from sklearn.covariance import LedoitWolf
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest

from oddscope.core.models.knn import KnnIndex, as_features, check_metric

MAX_DIMS = 256  # PCA target for the density models: 1280-d covariances are noisy and slow


class Detector:
    """Base class: validates inputs, remembers the fit dimension and size."""

    name = "detector"

    def fit(self, X_memory) -> "Detector":
        """Learn what normal looks like from ``X_memory`` (reference set or whole collection)."""
        X = as_features(X_memory, "X_memory")
        self.n_fit_, self.dim_ = X.shape
        self._fit(X)
        return self

    def score(self, X, exclude_self=False) -> np.ndarray:
        """Anomaly score per row of ``X``; ``exclude_self=True``: ``X`` is the fit data itself."""
        if not hasattr(self, "dim_"):
            raise ValueError(f"{type(self).__name__} is not fitted: call fit() first")
        X = as_features(X, dim=self.dim_)
        if exclude_self and len(X) != self.n_fit_:
            raise ValueError(f"exclude_self needs the {self.n_fit_} fit rows as X, got {len(X)} rows")
        return np.asarray(self._score(X, exclude_self), dtype=np.float64)

    def params(self) -> dict:
        """Constructor arguments (JSON-serialisable): ``make_detector(name, **params())`` rebuilds it."""
        raise NotImplementedError

    def _fit(self, X):
        raise NotImplementedError

    def _score(self, X, exclude_self):
        raise NotImplementedError


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
    """

    name = "knn"

    def __init__(self, k=5, metric="cosine", hubness=None):
        if hubness not in (None, "local_scaling"):
            raise ValueError(f"hubness must be None or 'local_scaling', got {hubness!r}")
        check_metric(metric)
        self.k, self.metric, self.hubness = int(k), metric, hubness

    def params(self):
        return {"k": self.k, "metric": self.metric, "hubness": self.hubness}

    def _fit(self, X):
        if self.hubness and len(X) < 2:
            raise ValueError("local scaling needs at least 2 fit rows")
        self.index_ = KnnIndex(self.metric).build(X)
        self.k_ = self.k
        if self.hubness:
            # σ of memory items never counts the item itself, in either mode;
            # queries then use the same (possibly clipped) k for their own σ.
            self.k_ = min(self.k, len(X) - 1)
            self._fit_neighbours = self.index_.query(X, self.k_, exclude_self=True)
            self.sigma_ = self._fit_neighbours[1][:, -1].astype(np.float64)

    def _score(self, X, exclude_self):
        if exclude_self and self.hubness:
            idx, dist = self._fit_neighbours  # already queried for σ: don't search twice
        else:
            idx, dist = self.index_.query(X, self.k_, exclude_self=exclude_self)
        dist = dist.astype(np.float64)
        if not self.hubness:
            return dist.mean(axis=1)
        sigma_x = dist[:, -1:]  # with exclude_self this equals self.sigma_
        scale = np.maximum(sigma_x * self.sigma_[idx], np.finfo(np.float64).tiny)
        return (1.0 - np.exp(-(dist**2) / scale)).mean(axis=1)


class IsolationForestDetector(Detector):
    """Isolation forest: anomalies are isolated by few random axis-aligned splits."""

    name = "iforest"

    def __init__(self, n_estimators=200, seed=0):
        self.n_estimators, self.seed = int(n_estimators), int(seed)

    def params(self):
        return {"n_estimators": self.n_estimators, "seed": self.seed}

    def _fit(self, X):
        self.forest_ = IsolationForest(n_estimators=self.n_estimators, random_state=self.seed).fit(X)

    def _score(self, X, exclude_self):
        return -self.forest_.score_samples(X)


class LofDetector(Detector):
    """Local outlier factor: a point's kNN density relative to its neighbours' densities.

    Same definition as scikit-learn's ``LocalOutlierFactor`` (unsupervised mode
    gives ``-negative_outlier_factor_``, reference mode ``novelty=True``
    scores), but neighbours come from :class:`KnnIndex`, so it scales to 10^6
    items where sklearn's exact neighbour search does not.
    """

    name = "lof"

    def __init__(self, k=20, metric="l2"):
        check_metric(metric)
        self.k, self.metric = int(k), metric

    def params(self):
        return {"k": self.k, "metric": self.metric}

    def _fit(self, X):
        if len(X) < 2:
            raise ValueError("LOF needs at least 2 fit rows")
        self.index_ = KnnIndex(self.metric).build(X)
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


def _pca(X, max_dims, seed=0):
    """PCA to at most ``max_dims`` (and rank-limited) dimensions, or None when unneeded."""
    n_components = min(max_dims, X.shape[1], len(X) - 1)
    if X.shape[1] <= max_dims or n_components < 1:
        return None
    # randomized SVD: seconds on 10^6 x 1280 where a full SVD/eigh takes minutes
    return PCA(n_components=n_components, svd_solver="randomized", random_state=seed).fit(X)


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
        self.pca_ = _pca(X, self.max_dims)
        self.gaussian_ = LedoitWolf().fit(self._reduce(X))

    def _reduce(self, X):
        return (self.pca_.transform(X) if self.pca_ is not None else X).astype(np.float64)

    def _score(self, X, exclude_self):
        return self.gaussian_.mahalanobis(self._reduce(X))


@contextmanager
def _single_torch_thread():
    """Run a tiny model on one thread: for a ~100k-parameter MLP, thread
    synchronisation costs far more than it saves (40x slower on a busy 2-core
    machine), and one thread gives the same floats on every machine."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _autoencoder(dim, hidden, bottleneck):
    import torch

    return torch.nn.Sequential(
        torch.nn.Linear(dim, hidden), torch.nn.ReLU(),
        torch.nn.Linear(hidden, bottleneck), torch.nn.ReLU(),
        torch.nn.Linear(bottleneck, hidden), torch.nn.ReLU(),
        torch.nn.Linear(hidden, dim),
    )


class AutoencoderDetector(Detector):
    """Reconstruction error of a small MLP autoencoder trained on the memory.

    Inputs are PCA-reduced to ``max_dims`` and standardised per component, so
    every direction weighs alike in the MSE.  Normal images lie on the manifold
    the bottleneck learned; anomalies reconstruct badly.  Training is capped at
    ``max_steps`` minibatch updates so a 10^6-item collection costs about what a
    50k one does; the seed fixes initialisation and batch order.  torch is
    imported when the detector trains, so that importing this module (the
    app's settings dialog lists the detectors) costs nothing.
    """

    name = "autoencoder"

    def __init__(self, hidden=128, bottleneck=32, epochs=30, batch_size=256, lr=1e-3,
                 max_steps=3000, max_dims=MAX_DIMS, seed=0):
        self.hidden, self.bottleneck, self.epochs = int(hidden), int(bottleneck), int(epochs)
        self.batch_size, self.lr, self.max_steps = int(batch_size), float(lr), int(max_steps)
        self.max_dims, self.seed = int(max_dims), int(seed)

    def params(self):
        return {"hidden": self.hidden, "bottleneck": self.bottleneck, "epochs": self.epochs,
                "batch_size": self.batch_size, "lr": self.lr, "max_steps": self.max_steps,
                "max_dims": self.max_dims, "seed": self.seed}

    def _standardise(self, X):
        import torch

        Z = self.pca_.transform(X) if self.pca_ is not None else X
        return torch.from_numpy(((Z - self.mean_) / self.std_).astype(np.float32))

    def _fit(self, X):
        with _single_torch_thread():
            self._train(X)

    def _train(self, X):
        import torch

        self.pca_ = _pca(X, self.max_dims, self.seed)
        Z = self.pca_.transform(X) if self.pca_ is not None else X
        self.mean_, self.std_ = Z.mean(axis=0), Z.std(axis=0) + 1e-6
        data = self._standardise(X)
        generator = torch.Generator().manual_seed(self.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.model_ = _autoencoder(data.shape[1], self.hidden, self.bottleneck)
        optimiser = torch.optim.Adam(self.model_.parameters(), lr=self.lr)
        steps = 0
        for _ in range(self.epochs):
            for batch in torch.randperm(len(data), generator=generator).split(self.batch_size):
                loss = torch.nn.functional.mse_loss(self.model_(data[batch]), data[batch])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                steps += 1
                if steps >= self.max_steps:
                    break
            if steps >= self.max_steps:
                break
        self.model_.eval()

    def _score(self, X, exclude_self):
        import torch

        data = self._standardise(X)
        with torch.no_grad(), _single_torch_thread():
            errors = [((self.model_(b) - b) ** 2).mean(dim=1) for b in data.split(65536)]
        return torch.cat(errors).numpy()


DETECTORS = {
    "knn": KnnDetector,
    "knn-l2": partial(KnnDetector, metric="l2"),
    "knn-l1": partial(KnnDetector, metric="l1"),
    # Local scaling judges a distance against the neighbourhood, so the neighbourhood must be
    # larger than a family of similar anomalies (on the demo, k=5 inverts the ranking: AUROC 0.43;
    # k=50 gives 0.90): a larger default k than plain kNN.
    "knn-ls": partial(KnnDetector, hubness="local_scaling", k=50),
    "iforest": IsolationForestDetector,
    "lof": LofDetector,
    "mahalanobis": MahalanobisDetector,
    "autoencoder": AutoencoderDetector,
}
# knn-l1 is exact brute force (no hnswlib space): too slow to run by default on large sets.
DEFAULT_DETECTORS = ("knn", "knn-l2", "knn-ls", "iforest", "lof", "mahalanobis", "autoencoder")


def make_detector(name, **overrides) -> Detector:
    """Build the registered detector ``name``, with constructor ``overrides``."""
    if name not in DETECTORS:
        raise ValueError(f"unknown detector {name!r}; choose from {sorted(DETECTORS)}")
    detector = DETECTORS[name](**overrides)
    detector.name = name
    return detector
