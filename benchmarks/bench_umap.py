"""Time the map: PCA, UMAP with its own NN-descent vs with a precomputed hnswlib kNN graph, transform.

    python benchmarks/bench_umap.py [--sizes 10000 50000] [--dim 256] [--parallel]

Data: a synthetic Gaussian mixture (20 components).  hnswlib is used directly
(cosine space, M=16, ef_construction=200) and its time (build + self-query) is
its own column; "umap+knn" excludes it.  UMAP stage times come from the
progress callback, so they exclude PCA.  "acc" columns are a sanity check that
both maps are equally good: leave-one-out 10-NN accuracy of mixture labels in
2-D on up to 5,000 points.  numba JIT is warmed up before timing.
"""

from __future__ import annotations

import argparse
import time

import hnswlib
import numpy as np
from sklearn.neighbors import NearestNeighbors

from oddscope.core.models.projection import MapProjection
from oddscope.core.models.reduction import FeatureReducer

N_COMPONENTS = 20
N_NEW = 1000


def mixture(n: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(12345).normal(0, 1, size=(N_COMPONENTS, dim))
    spreads = np.random.default_rng(54321).uniform(0.3, 0.8, size=N_COMPONENTS)
    labels = rng.integers(0, N_COMPONENTS, n)
    X = centers[labels] + rng.normal(size=(n, dim)) * spreads[labels, None]
    return X.astype(np.float32), labels


def hnsw_knn(X: np.ndarray, k: int):
    index = hnswlib.Index(space="cosine", dim=X.shape[1])
    index.init_index(max_elements=len(X), ef_construction=200, M=16, random_seed=0)
    index.add_items(X, np.arange(len(X)))
    index.set_ef(max(2 * k, 50))
    indices, distances = index.knn_query(X, k=k)
    return indices, distances


def timed_fit(model: MapProjection, X, knn=None) -> dict[str, float]:
    """Fit and return seconds per progress stage ("map: pca", "map: umap")."""
    first_seen = {}
    model.fit(X, knn=knn, progress=lambda stage, done, total: first_seen.setdefault(stage, time.perf_counter()))
    return {"pca": first_seen["map: umap"] - first_seen["map: pca"],
            "umap": first_seen["map: done"] - first_seen["map: umap"]}


def map_accuracy(coords: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    rows = np.random.default_rng(0).choice(len(coords), min(5000, len(coords)), replace=False)
    idx = NearestNeighbors(n_neighbors=k + 1).fit(coords).kneighbors(coords[rows], return_distance=False)[:, 1:]
    votes = labels[idx]
    majority = np.array([np.bincount(row, minlength=N_COMPONENTS).argmax() for row in votes])
    return float(np.mean(majority == labels[rows]))


def seconds(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def warm_up(dim: int, params: dict) -> None:
    """Compile numba code on every UMAP path (exact kNN below 4096 items, NN-descent above) so it is not timed."""
    for n in (500, 5000):
        X, _ = mixture(n, dim, seed=99)
        for knn in (None, hnsw_knn(X, params["n_neighbors"])):
            MapProjection(**params).fit(X, knn=knn).transform(X[:10] + 0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--n-neighbors", type=int, default=15)
    parser.add_argument("--parallel", action="store_true", help="seed=None: multi-threaded, not reproducible")
    args = parser.parse_args()
    params = {"n_neighbors": args.n_neighbors, "seed": None if args.parallel else 0}

    t_warm, _ = seconds(lambda: warm_up(args.dim, params))
    print(f"# numba warm-up {t_warm:.1f} s; UMAP {'parallel' if args.parallel else 'single-threaded (seed=0)'}")
    header = ("N", "dim", "pca_s", "umap_nnd_s", "hnsw_s", "umap+knn_s", "tr_umap_s", "tr_knnmean_s",
              "acc_nnd", "acc_knn")
    print(" ".join(f"{h:>12}" for h in header))
    for n in args.sizes:
        X, labels = mixture(n, args.dim, seed=n)
        X_new, _ = mixture(N_NEW, args.dim, seed=n + 1)
        t_pca, _ = seconds(lambda: FeatureReducer(50).fit_transform(X))

        own = MapProjection(**params)
        t_own = timed_fit(own, X)["umap"]
        t_hnsw, knn = seconds(lambda: hnsw_knn(X, args.n_neighbors))
        pre = MapProjection(**params)
        t_pre = timed_fit(pre, X, knn)["umap"]
        t_tr_own, _ = seconds(lambda: own.transform(X_new))
        t_tr_pre, _ = seconds(lambda: pre.transform(X_new))
        assert own.transform_method_ == "umap" and pre.transform_method_ == "knn_mean"

        row = (n, args.dim, t_pca, t_own, t_hnsw, t_pre, t_tr_own, t_tr_pre,
               map_accuracy(own.embedding_, labels), map_accuracy(pre.embedding_, labels))
        print(" ".join(f"{v:>12}" if isinstance(v, int) else f"{v:>12.2f}" for v in row), flush=True)


if __name__ == "__main__":
    main()
