"""The 2-D map of a collection: L2-normalise, PCA, then UMAP.

Geometry: image-encoder features are compared by angle.  With ``metric="cosine"``
rows are L2-normalised first, after which Euclidean distance is a monotone
function of cosine distance (``|a - b|^2 = 2 (1 - cos)``).  PCA centres the data,
which would distort a cosine computed *after* it, but it approximately keeps
Euclidean distances, so everything after the normalisation (PCA, UMAP, the
fallback placement) works in plain Euclidean space.  ``metric="euclidean"``
skips the normalisation.

Scale: PCA is fitted on a row sample (:data:`~oddscope.core.models.reduction.PCA_FIT_MAX_ROWS`) and applied in
chunks, so 10^6 x 1280 float32 features need no second full-size copy.  UMAP's
own NN-descent can be skipped by passing the kNN graph the project already
built with hnswlib (``fit(X, knn=(indices, distances))``).

Reproducibility vs speed: with an integer ``seed`` UMAP runs single-threaded
and gives the same map on every run (the default: a map that moves when the
user re-opens a project is confusing).  ``seed=None`` uses all cores and gives
a slightly different map each time.

Progress: UMAP's own neighbour graph cannot report, so ``"map: umap"`` comes with no total (the app
shows a busy bar); its layout runs a known number of epochs, whose count reaches the progress callback
as the ``"map: layout"`` stage (see :class:`_EpochFeed`), so a long map visibly moves, and Cancel stops
it between epochs.

UMAP (and numba) is imported lazily, so importing this module is cheap.
"""

from __future__ import annotations

import re
import warnings

import joblib
import numpy as np
from sklearn.neighbors import NearestNeighbors

from oddscope.core.models.reduction import FeatureReducer
from oddscope.core.models.validation import check_features
from oddscope.core.progress import as_progress

METRICS = ("cosine", "euclidean")
MIN_UMAP_ITEMS = 4  # below this, fit() returns a trivial PCA layout instead of UMAP
LAYOUT_REPORT_S = 0.5  # at most one layout progress report per this many seconds (and the first and last)


class MapProjection:
    """Fit a 2-D UMAP map of feature vectors and place new items on it.

    After :meth:`fit`, ``embedding_`` holds float32 (N, 2) coordinates and
    ``n_neighbors_`` the neighbour count actually used (clipped to N - 2 for
    small N).  :meth:`transform` sets ``transform_method_`` to the path it took:

    - ``"umap"``: UMAP's own transform (model fitted with its own NN-descent);
    - ``"knn_mean"``: the model was fitted from a precomputed kNN graph, which
      leaves UMAP without a search index, so each new point goes to the
      inverse-distance-weighted mean of the map coordinates of its
      ``n_neighbors_`` nearest fitted items (exact search in the reduced space);
    - ``"pca"``: fewer than :data:`MIN_UMAP_ITEMS` items were fitted; the
      "map" is then just the first two principal axes (zeros for one item).
    """

    def __init__(self, n_neighbors: int = 15, min_dist: float = 0.1, metric: str = "cosine",
                 pca_components: int | None = 50, seed: int | None = 0, low_memory: bool = True):
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.metric = metric
        self.pca_components = pca_components
        self.seed = seed
        self.low_memory = low_memory

    def fit(self, X, knn=None, progress=None) -> "MapProjection":
        """Fit the map.

        ``knn``: optional ``(indices, distances)``, each (N, k), e.g. from the
        project's hnswlib index over the *full* features; UMAP then skips its
        NN-descent.  Column 0 should be the item itself (as UMAP expects); if
        most rows do not start with themselves, a self column is prepended.
        Needs ``k >= n_neighbors`` with self.  Distances are in ``metric`` units:
        for cosine, hnswlib's ``"cosine"`` output (1 - cos) as is; for euclidean,
        true distances (the square root of hnswlib's ``"l2"`` output).
        A map fitted this way places new items with the ``"knn_mean"`` path.
        """
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {self.metric!r}")
        if self.n_neighbors < 2:
            raise ValueError(f"n_neighbors must be >= 2, got {self.n_neighbors}")
        X = check_features(X)
        progress = as_progress(progress)
        n = len(X)
        self.reducer_ = FeatureReducer(self.pca_components, self.metric == "cosine", self.seed)
        progress.update("map: pca", 0, n)
        Z = self.reducer_.fit_transform(X, progress, "map: pca")

        self.umap_ = None
        if n < MIN_UMAP_ITEMS:
            self.n_neighbors_ = 0
            self._trivial_center = Z.mean(axis=0)
            self._trivial_axes = np.linalg.svd(Z - self._trivial_center, full_matrices=False)[2][:2]
            self.embedding_ = self._trivial_layout(Z)
        else:
            self.n_neighbors_ = min(self.n_neighbors, n - 2)
            progress.update("map: umap", 0, 0)  # no total: the neighbour graph cannot report (a busy bar)
            self.umap_ = self._fit_umap(Z, knn, progress)
            self._umap_can_transform = knn is None  # a precomputed graph leaves UMAP without a search index
            self.embedding_ = self.umap_.embedding_.astype(np.float32)
        progress.update("map: done", 1, 1)
        return self

    def transform(self, X_new) -> np.ndarray:
        """Place new items on the fitted map; see the class docstring for the paths."""
        if not hasattr(self, "embedding_"):
            raise RuntimeError("MapProjection is not fitted yet; call fit() first")
        Z = self.reducer_.transform(check_features(X_new, "X_new"))
        if self.umap_ is None:
            self.transform_method_ = "pca"
            return self._trivial_layout(Z)
        if not self._umap_can_transform:
            self.transform_method_ = "knn_mean"
            return self._knn_mean(Z)
        self.transform_method_ = "umap"
        return np.asarray(self.umap_.transform(Z), dtype=np.float32)

    def save(self, path) -> None:
        """Write the fitted map (reducer, UMAP model, coordinates) with joblib."""
        joblib.dump({"format": 1, "params": self._params(), "state": self._state()}, path)

    @classmethod
    def load(cls, path) -> "MapProjection":
        saved = joblib.load(path)
        if not isinstance(saved, dict) or saved.get("format") != 1:
            raise ValueError(f"{path} is not a saved Oddscope map (format 1)")
        model = cls(**saved["params"])
        model.__dict__.update(saved["state"])
        return model

    def _params(self) -> dict:
        return {k: getattr(self, k) for k in
                ("n_neighbors", "min_dist", "metric", "pca_components", "seed", "low_memory")}

    def _state(self) -> dict:
        return {k: v for k, v in vars(self).items() if k not in self._params()}

    def _fit_umap(self, Z: np.ndarray, knn, progress):
        import umap  # lazy: pulls in numba and pynndescent

        k = self.n_neighbors_
        precomputed = (None, None, None) if knn is None else _umap_knn(knn, len(Z), k, self.metric)
        model = umap.UMAP(
            n_neighbors=k, min_dist=self.min_dist, metric="euclidean", low_memory=self.low_memory,
            random_state=self.seed, n_jobs=1 if self.seed is not None else -1,
            precomputed_knn=precomputed, tqdm_kwds=_EpochFeed(progress).tqdm_kwds(),
        )
        try:
            with warnings.catch_warnings():
                # Expected and handled: no search index with a precomputed graph -> knn_mean transform.
                warnings.filterwarnings("ignore", message=r".*knn_search_index.*")
                # Tiny graphs: UMAP falls back to random init and says so.
                warnings.filterwarnings("ignore", message=r".*Spectral initialisation failed.*")
                model.fit(Z)
        finally:
            model.tqdm_kwds = None  # the feed holds the caller's callback: not part of the saved model
        return model

    def _knn_mean(self, Z: np.ndarray) -> np.ndarray:
        fitted = self.umap_._raw_data  # the reduced features UMAP was fitted on (not duplicated on save)
        dist, idx = NearestNeighbors(n_neighbors=self.n_neighbors_).fit(fitted).kneighbors(Z)
        weights = 1.0 / np.maximum(dist, 1e-6)
        weights /= weights.sum(axis=1, keepdims=True)
        return np.einsum("nk,nkc->nc", weights, self.embedding_[idx]).astype(np.float32)

    def _trivial_layout(self, Z: np.ndarray) -> np.ndarray:
        coords = np.zeros((len(Z), 2), dtype=np.float32)
        axes = self._trivial_axes
        coords[:, :len(axes)] = (Z - self._trivial_center) @ axes.T
        return coords


class _EpochFeed:
    """A text stream for UMAP's own tqdm bar over the layout epochs (UMAP's ``tqdm_kwds``): each
    ``done/total`` the bar prints becomes a ``"map: layout"`` progress report.  Reports come from the
    fitting thread (``miniters=1`` keeps tqdm's monitor thread from printing); a report that raises
    :class:`~oddscope.core.progress.Cancelled` ends the fit, and the bar's closing print after a cancel
    is dropped."""

    _COUNT = re.compile(r"(\d+)/(\d+)")

    def __init__(self, progress):
        self.progress = progress

    def tqdm_kwds(self) -> dict:
        return {"disable": False, "file": self, "bar_format": "{n}/{total}", "miniters": 1,
                "mininterval": LAYOUT_REPORT_S}

    def write(self, text: str) -> None:
        counts = self._COUNT.findall(text)
        if counts and not self.progress.cancelled:
            done, total = counts[-1]
            self.progress.update("map: layout", int(done), int(total))

    def flush(self) -> None:
        pass


def _umap_knn(knn, n: int, k: int, metric: str):
    """Turn an hnswlib-style ``(indices, distances)`` pair into UMAP's precomputed_knn.

    Copies (UMAP edits the arrays in place), trims to ``k`` columns (UMAP keeps
    extra columns below 4096 items), and converts cosine distances to the
    Euclidean distances between normalised rows that the map works in.
    """
    if not isinstance(knn, (tuple, list)) or len(knn) != 2:
        raise ValueError("knn must be a pair (indices, distances)")
    indices, distances = np.asarray(knn[0]), np.asarray(knn[1])
    if indices.ndim != 2 or indices.shape != distances.shape or len(indices) != n:
        raise ValueError(f"knn indices/distances must both have shape ({n}, k); "
                         f"got {indices.shape} and {distances.shape}")
    if np.mean(indices[:, 0] == np.arange(n)) < 0.5:  # neighbours given without self
        indices = np.hstack([np.arange(n)[:, None], indices])
        distances = np.hstack([np.zeros((n, 1), distances.dtype), distances])
    if indices.shape[1] < k:
        raise ValueError(f"knn has {indices.shape[1]} neighbours per item (self included); "
                         f"the map needs at least n_neighbors={k}")
    indices = np.array(indices[:, :k], dtype=np.int64, order="C")
    distances = np.array(distances[:, :k], dtype=np.float32, order="C")
    if not np.isfinite(distances).all():
        raise ValueError("knn distances contain NaN or inf")
    if metric == "cosine":
        distances = np.sqrt(2.0 * np.maximum(distances, 0.0), dtype=np.float32)
    return indices, distances


def fit_map(X, knn=None, progress=None, **params) -> tuple[np.ndarray, MapProjection]:
    """Fit a :class:`MapProjection` (``params`` go to its constructor); return ``(coords, model)``."""
    model = MapProjection(**params).fit(X, knn=knn, progress=progress)
    return model.embedding_, model
