"""Time one active-learning update (fit + scores) per ranker, items x labels.

The app refits after every batch of labels, so an update must feel instant;
the one-time ``prepare`` (PCA, kNN graph) is timed separately.  Data: 64-dim
features with an 8-dim latent mixture structure (like reduced CNN features,
which is what the graph build time depends on), a random anomaly score and
random 0-5 labels.  A method whose update takes longer than ``--slow``
seconds skips the larger label counts at that size.

    python benchmarks/bench_active.py            # N = 10,000 and 100,000
    python benchmarks/bench_active.py --sizes 10000 --labels 20 100
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from oddscope.core.models.registry import RANKERS, make_ranker


def features(n, dim=64, latent=8, clusters=20, seed=0):
    """Reduced-CNN-like features: a Gaussian mixture on an 8-dim latent space, embedded in ``dim`` dims."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(clusters, latent))
    z = centres[rng.integers(clusters, size=n)] + rng.normal(size=(n, latent))
    return (z @ rng.normal(size=(latent, dim)) + 0.3 * rng.normal(size=(n, dim))).astype(np.float32)


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--labels", type=int, nargs="+", default=[20, 100, 500])
    parser.add_argument("--methods", nargs="+", default=list(RANKERS))
    parser.add_argument("--slow", type=float, default=10.0, help="skip a method after an update this slow (s)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    rows = []
    for n in args.sizes:
        X = features(n)
        rng = np.random.default_rng(1)
        anomaly = rng.random(n)
        for method in args.methods:
            ranker = make_ranker(method)
            prep = best_of(lambda: ranker.prepare(X), 1)
            ranker.fit(X, anomaly)  # warm up: the first fit of oddscope sorts the anomaly once
            for n_labels in args.labels:
                idx = rng.choice(n, n_labels, replace=False)
                y = rng.integers(0, 6, n_labels).astype(float)

                def update():
                    ranker.fit(X, anomaly, idx, y).scores()

                first = best_of(update, 1)
                if first > args.slow:
                    rows.append((n, method, prep, n_labels, first, first, "too slow: larger label counts skipped"))
                    break
                rows.append((n, method, prep, n_labels, first, best_of(update, args.repeats), ""))
    print("first = first update of a fitted ranker with new labels; update = best of the repeats")
    print(f"{'items':>8} {'method':<15} {'prepare s':>10} {'labels':>7} {'first ms':>9} {'update ms':>10}  note")
    for n, method, prep, n_labels, first, t, note in rows:
        print(f"{n:>8} {method:<15} {prep:>10.2f} {n_labels:>7} {1000 * first:>9.1f} {1000 * t:>10.1f}  {note}")


if __name__ == "__main__":
    main()
