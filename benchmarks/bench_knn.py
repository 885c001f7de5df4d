"""hnswlib vs exact brute force for the kNN anomaly score (k=5, exclude_self).

    python benchmarks/bench_knn.py [--sizes 10000 100000] [--dim 256] [--metric cosine]

For each N: time to build the hnswlib index, time to score all N items (their
k nearest neighbours, excluding themselves), the time exact brute force needs
for the same job, the speed-up, and recall@k of hnswlib against the exact
neighbours on a sample of queries.  Above --exact-limit items brute force is
timed on a sample of queries and scaled to N (marked "est." in the table).
Data: a seeded Gaussian mixture, a stand-in for clustered image features.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from oddscope.core.models.knn import KnnIndex, brute_force_knn

K = 5


def gaussian_mixture(n, dim, n_clusters=50, seed=0):
    """Clusters of different spread around random centres, float32."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim)).astype(np.float32)
    spreads = rng.uniform(0.3, 1.0, n_clusters).astype(np.float32)
    labels = rng.integers(0, n_clusters, n)
    noise = rng.standard_normal((n, dim), dtype=np.float32)
    return centres[labels] + spreads[labels, None] * noise


def exact_neighbours_of(X, rows, metric):
    """Exact k nearest neighbours of X[rows] among X, each row excluding itself."""
    idx, _ = brute_force_knn(X, X[rows], K + 1, metric)
    own = idx == rows[:, None]
    own[~own.any(axis=1), -1] = True  # self not in the k+1 (tie): drop the farthest
    return np.array([r[~m][:K] for r, m in zip(idx, own)])


def bench(n, dim, metric, exact_limit, sample, seed):
    X = gaussian_mixture(n, dim, seed=seed)
    start = time.perf_counter()
    index = KnnIndex(metric, seed=seed).build(X)
    build_s = time.perf_counter() - start

    start = time.perf_counter()
    found, _ = index.query(X, K, exclude_self=True)
    query_s = time.perf_counter() - start

    rows = np.random.default_rng(seed).choice(n, size=min(sample, n), replace=False)
    if n <= exact_limit:
        start = time.perf_counter()
        exact, _ = brute_force_knn(X, X, K, metric, exclude_self=True)
        brute_s, estimated = time.perf_counter() - start, False
        exact = exact[rows]
    else:  # fixed cost (normalising X) timed on one query, per-query cost on the sample
        start = time.perf_counter()
        exact_neighbours_of(X, rows[:1], metric)
        fixed_s = time.perf_counter() - start
        start = time.perf_counter()
        exact = exact_neighbours_of(X, rows, metric)
        per_query_s = max(time.perf_counter() - start - fixed_s, 0.0) / (len(rows) - 1)
        brute_s, estimated = fixed_s + per_query_s * (n - 1), True
    recall = np.mean([len(set(a) & set(b)) / K for a, b in zip(found[rows], exact)])
    return {"N": n, "dim": dim, "build_s": build_s, "query_s": query_s, "brute_s": brute_s,
            "estimated": estimated, "speedup": brute_s / (build_s + query_s), "recall": recall,
            "sample": len(rows)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--metric", choices=("cosine", "l2"), default="cosine")
    parser.add_argument("--exact-limit", type=int, default=20_000, help="largest N brute-forced in full")
    parser.add_argument("--sample", type=int, default=1000, help="queries for recall (and brute-force estimate)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    header = f"{'N':>8} {'dim':>4} {'build s':>8} {'query s':>8} {'brute s':>12} {'speed-up':>8} {f'recall@{K}':>9}"
    print(f"kNN score of every item, k={K}, exclude_self, metric={args.metric}, hnswlib M=16 ef_construction=200")
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (timings are wall-clock)")
    print(header)
    for n in args.sizes:
        r = bench(n, args.dim, args.metric, args.exact_limit, args.sample, args.seed)
        brute = f"{r['brute_s']:.1f}" + (" est." if r["estimated"] else "")
        print(f"{r['N']:>8} {r['dim']:>4} {r['build_s']:>8.1f} {r['query_s']:>8.1f} {brute:>12} "
              f"{r['speedup']:>7.1f}x {r['recall']:>9.3f}", flush=True)
    print(f"speed-up = brute / (build + query); recall on {args.sample} sampled queries; "
          f"'est.' = brute force timed on that sample and scaled to N")


if __name__ == "__main__":
    main()
