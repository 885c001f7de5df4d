"""Cluster labels for the collection, on the same reduced features as the map.

Features are L2-normalised and PCA-reduced exactly as for the map
(:class:`~oddscope.core.models.reduction.FeatureReducer`), so the clusters agree with
the cosine geometry the user sees.  Every method scales to 10^6 items:

- ``kmeans``: :class:`KMeans`, or :class:`MiniBatchKMeans` above
  :data:`MINIBATCH_ABOVE` items;
- ``gmm``: diagonal-covariance Gaussian mixture fitted on a sample of at most
  ``sample_size`` (default :data:`GMM_SAMPLE`) items, then ``predict`` on all
  (diagonal: robust to duplicates and small clusters, cheap in 50-D);
- ``ward``: agglomerative Ward linkage is O(N^2) in memory and time, so it is
  fitted on a sample of at most ``sample_size`` (default :data:`WARD_SAMPLE`)
  items; the rest go to the nearest Ward cluster centroid.

Labels are int32, renumbered by decreasing cluster size (0 = largest), and
deterministic for a given ``seed``.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import AgglomerativeClustering, KMeans, MiniBatchKMeans
from sklearn.metrics import pairwise_distances_argmin, silhouette_score
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

from oddscope.core.models.reduction import FeatureReducer
from oddscope.core.progress import as_progress

CLUSTERERS = ("kmeans", "gmm", "ward")
MINIBATCH_ABOVE = 50_000
GMM_SAMPLE = 50_000
WARD_SAMPLE = 5_000  # condensed distance matrix of 5k items: 100 MB, a few seconds
CHOOSE_K_RANGE = (2, 15)
CHOOSE_K_SAMPLE = 3_000


def cluster(X, method: str = "kmeans", n_clusters: int | None = None, seed: int = 0,
            pca_components: int | None = 50, sample_size: int | None = None, progress=None) -> np.ndarray:
    """Cluster feature rows with one of :data:`CLUSTERERS`; return int32 labels.

    ``n_clusters=None`` picks one with :func:`choose_n_clusters`.
    ``sample_size`` caps the items GMM and Ward are fitted on (the rest are assigned).
    """
    return cluster_all(X, (method,), n_clusters, seed, pca_components, sample_size, progress)[f"cluster_{method}"]


def cluster_all(X, methods=CLUSTERERS, n_clusters: int | None = None, seed: int = 0,
                pca_components: int | None = 50, sample_size: int | None = None,
                progress=None) -> dict[str, np.ndarray]:
    """Run several clusterers on one shared PCA reduction; return ``{"cluster_<method>": labels}``.

    When ``n_clusters`` is None it is chosen once and shared, so the columns are comparable.
    """
    methods = tuple(methods)
    unknown = [m for m in methods if m not in CLUSTERERS]
    if unknown:
        raise ValueError(f"unknown clustering method(s) {unknown}; choose from {CLUSTERERS}")
    progress = as_progress(progress)
    progress.update("cluster: pca", 0, 1)
    Z = FeatureReducer(pca_components, normalize=True, seed=seed).fit_transform(X, progress, "cluster: pca")
    k = _choose_k(Z, seed) if n_clusters is None else int(n_clusters)
    if k < 1:
        raise ValueError(f"n_clusters must be >= 1, got {n_clusters}")
    k = min(k, len(Z))
    out = {}
    for i, method in enumerate(methods):
        progress.update(f"cluster: {method}", i, len(methods))
        labels = np.zeros(len(Z), np.int32) if k == 1 else _FITTERS[method](Z, k, seed, sample_size)
        out[f"cluster_{method}"] = _by_size(labels)
    progress.update("cluster: done", len(methods), len(methods))
    return out


def choose_n_clusters(X, k_range: tuple[int, int] = CHOOSE_K_RANGE, seed: int = 0,
                      pca_components: int | None = 50) -> int:
    """Pick a cluster count: the best k-means silhouette over ``k_range`` (inclusive).

    Scored on a random sample of :data:`CHOOSE_K_SAMPLE` items so it costs about
    a second at any N.  Silhouette favours well-separated groups, which is what
    a colour overlay on the map can show; the small range keeps colours readable.
    """
    Z = FeatureReducer(pca_components, normalize=True, seed=seed).fit_transform(X)
    return _choose_k(Z, seed, k_range)


def _choose_k(Z: np.ndarray, seed: int, k_range: tuple[int, int] = CHOOSE_K_RANGE) -> int:
    rng = np.random.default_rng(seed)
    if len(Z) > CHOOSE_K_SAMPLE:
        Z = Z[np.sort(rng.choice(len(Z), CHOOSE_K_SAMPLE, replace=False))]
    ks = range(max(2, k_range[0]), min(k_range[1], len(Z) - 1) + 1)
    if len(ks) == 0 or len(np.unique(Z, axis=0)) < 3:
        return 1
    scores = {}
    # Many tiny fits: OpenMP threads only add overhead (10x slower on a busy machine).
    with threadpool_limits(1):
        for k in ks:
            labels = KMeans(n_clusters=k, n_init=3, random_state=seed).fit_predict(Z)
            if len(np.unique(labels)) > 1:
                scores[k] = silhouette_score(Z, labels)
    return max(scores, key=scores.get) if scores else 1


def _kmeans(Z, k, seed, sample_size):
    if len(Z) > MINIBATCH_ABOVE:
        model = MiniBatchKMeans(n_clusters=k, batch_size=4096, n_init=3, random_state=seed)
    else:
        model = KMeans(n_clusters=k, n_init=3, random_state=seed)
    return model.fit_predict(Z)


def _gmm(Z, k, seed, sample_size):
    fit_rows = _sample(len(Z), sample_size or GMM_SAMPLE, seed)
    model = GaussianMixture(n_components=min(k, len(fit_rows)), covariance_type="diag", random_state=seed)
    model.fit(Z[fit_rows])
    return model.predict(Z)


def _ward(Z, k, seed, sample_size):
    fit_rows = _sample(len(Z), sample_size or WARD_SAMPLE, seed)
    k = min(k, len(fit_rows))
    sample_labels = AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(Z[fit_rows])
    if len(fit_rows) == len(Z):
        return sample_labels
    centroids = np.stack([Z[fit_rows[sample_labels == c]].mean(axis=0) for c in range(k)])
    labels = pairwise_distances_argmin(Z, centroids)
    labels[fit_rows] = sample_labels  # sampled items keep their Ward label
    return labels


_FITTERS = {"kmeans": _kmeans, "gmm": _gmm, "ward": _ward}


def _sample(n: int, size: int, seed: int) -> np.ndarray:
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def _by_size(labels: np.ndarray) -> np.ndarray:
    """Renumber labels 0..k-1 by decreasing size (ties by old label), so colours are stable."""
    values, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    order = np.lexsort((values, -counts))
    rank = np.empty(len(values), dtype=np.int32)
    rank[order] = np.arange(len(values), dtype=np.int32)
    return rank[inverse.ravel()]
