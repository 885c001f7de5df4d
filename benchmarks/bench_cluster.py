"""Indexing on a local Ray cluster against the single-process path, with the same cores (issue 12).

    python benchmarks/bench_cluster.py [--images 2000 20000] [--knn-items 1000000] [--dim 256]

Extraction: demo images (``make_demo``) into two fresh projects, one by ``extract_features`` (decoding
workers + the encoder in this process), one by ``extract_features_on_cluster`` (Ray Data: decode tasks,
an encoder actor pool, shard files copied into the matrix) on a local Ray with every core, started once
before timing (its start-up is printed apart).  Each timing includes loading the encoder, as ``oddscope
index`` does (the cluster path loads it here and in its actor).  Goal: the cluster path within 15% of the
single one.

kNN scoring: a seeded Gaussian mixture (a stand-in for image features) indexed once by hnswlib (cosine),
then every item's k=10 neighbours (excluding itself) queried in this process and as Ray tasks over blocks
(``query_on_cluster``); the two must agree exactly, and recall@10 is measured against exact brute force on
a sample of queries.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
from bench_knn import gaussian_mixture

from oddscope.core.data.demo import make_demo
from oddscope.core.models.encoders import load_encoder
from oddscope.core.models.knn import KnnIndex, brute_force_knn
from oddscope.core.models.registry import DEFAULT_ENCODER
from oddscope.core.project.store import Project
from oddscope.core.workflows.cluster.extraction import extract_features_on_cluster
from oddscope.core.workflows.cluster.scoring import query_on_cluster
from oddscope.core.workflows.extraction import extract_features
from oddscope.core.workflows.pipeline import add_source

K = 10


def bench_extraction(n: int, root: Path) -> dict:
    """Seconds of both extraction paths on ``n`` demo images, loading the encoder included."""
    make_demo(root, n_images=n, seed=0, nuisance_fraction=0.0)
    load = partial(load_encoder, DEFAULT_ENCODER)
    out = {"N": n}
    for name, run in (("single", extract_features),
                      ("cluster", partial(extract_features_on_cluster, load_encoder=load))):
        with Project.create(root / f"project-{name}") as project:
            add_source(project, root / "images")
            start = time.perf_counter()
            report = run(project, load())
            out[name] = time.perf_counter() - start
            assert report.computed == n, report
    out["overhead"] = out["cluster"] / out["single"] - 1
    return out


def bench_knn(n: int, dim: int, sample: int, seed: int = 0) -> dict:
    """Build once, query every item here and on the cluster; recall@K against exact on ``sample`` items."""
    X = gaussian_mixture(n, dim, seed=seed)
    start = time.perf_counter()
    index = KnnIndex("cosine", seed=seed, num_threads=os.cpu_count() or 1).build(X)
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    here, _ = index.query(X, K, exclude_self=True)
    here_s = time.perf_counter() - start
    start = time.perf_counter()
    there, _ = query_on_cluster(index, X, K, exclude_self=True)
    there_s = time.perf_counter() - start
    rows = np.random.default_rng(seed).choice(n, size=min(sample, n), replace=False)
    exact, _ = brute_force_knn(X, X[rows], K + 1, "cosine")
    exact = np.array([[j for j in r if j != i][:K] for i, r in zip(rows, exact)])
    recall = np.mean([len(set(a) & set(b)) / K for a, b in zip(there[rows], exact)])
    return {"N": n, "build_s": build_s, "here_s": here_s, "cluster_s": there_s, "recall": recall,
            "identical": bool(np.array_equal(here, there))}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, nargs="*", default=[2000, 20_000], help="demo images per run")
    parser.add_argument("--knn-items", type=int, nargs="*", default=[1_000_000], help="synthetic items to score")
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--sample", type=int, default=1000, help="queries checked against exact neighbours")
    args = parser.parse_args(argv)
    import ray

    cpus = os.cpu_count() or 1
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {cpus} cores (timings are wall-clock)")
    start = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, logging_level=logging.WARNING)
    print(f"local Ray started in {time.perf_counter() - start:.1f} s (not in the timings below)")
    try:
        if args.images:
            load_encoder(DEFAULT_ENCODER)  # imports and first-load costs out of the first timing
            print(f"\nextraction, {DEFAULT_ENCODER}\n{'N':>7} {'single s':>9} {'img/s':>7} {'cluster s':>10} "
                  f"{'img/s':>7} {'overhead':>9}")
            for n in args.images:
                with tempfile.TemporaryDirectory() as tmp:
                    r = bench_extraction(n, Path(tmp))
                print(f"{n:>7} {r['single']:>9.1f} {n / r['single']:>7.1f} {r['cluster']:>10.1f} "
                      f"{n / r['cluster']:>7.1f} {r['overhead']:>+8.0%}", flush=True)
        if args.knn_items:
            print(f"\nkNN scoring, cosine, k={K}, exclude_self, {args.dim}-d, hnswlib M=16 ef_construction=200\n"
                  f"{'N':>9} {'build s':>8} {'query s here':>13} {'query s Ray':>12} {'identical':>9} "
                  f"{f'recall@{K}':>10}")
            for n in args.knn_items:
                r = bench_knn(n, args.dim, args.sample)
                print(f"{n:>9} {r['build_s']:>8.1f} {r['here_s']:>13.1f} {r['cluster_s']:>12.1f} "
                      f"{str(r['identical']):>9} {r['recall']:>10.3f}", flush=True)
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
