"""Indexing on a local Ray cluster against the single-process path, with the same cores (issue 12).

    python benchmarks/bench_cluster.py [--images 2000 20000] [--knn-items 1000000] [--dim 256] [--knn-pca 128]
                                       [--analysis-items 200000] [--fit-sample 50000]

Extraction: demo images (``make_demo``) into two fresh projects, one by ``extract_features`` (decoding
workers + the encoder in this process), one by ``extract_features_on_cluster`` (Ray Data: decode tasks,
an encoder actor pool, shard files copied into the matrix) on a local Ray with every core, started once
before timing (its start-up is printed apart).  Each timing includes loading the encoder, as ``oddscope
index`` does (the cluster path loads it here and in its actor).  Goal: the cluster path within 15% of the
single one.

kNN scoring: a seeded Gaussian mixture (a stand-in for image features) indexed once by hnswlib (cosine),
then every item's k=10 neighbours (excluding itself) queried in this process and as Ray tasks over blocks
(``query_on_cluster``); the two must agree exactly, and recall@10 is measured against exact brute force on
a sample of queries.  With ``--knn-pca N`` the index is also built on the features reduced by PCA to N
dimensions (``index --knn-pca``): its build time and recall@10 against the exact neighbours of the full
features.

Analysis: the detectors other than kNN and the map on ``--analysis-items`` synthetic items, fitted on a
``--fit-sample`` sample and applied in parallel blocks (``ClusterScoring``, ``map_on_cluster``), against
fitting and scoring every item in this process (no map here: UMAP of every item is the step the sample
avoids).  The sampled scores are compared with the full ones by Spearman correlation.
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
from scipy.stats import spearmanr

from oddscope.core.data.demo import make_demo
from oddscope.core.models.detectors.knn import KnnDetector
from oddscope.core.models.encoders import load_encoder
from oddscope.core.models.knn import KnnIndex, brute_force_knn
from oddscope.core.models.registry import DEFAULT_ENCODER, make_detector
from oddscope.core.project.store import Project
from oddscope.core.workflows.cluster.extraction import extract_features_on_cluster
from oddscope.core.workflows.cluster.mapping import map_on_cluster
from oddscope.core.workflows.cluster.scoring import ClusterScoring, query_on_cluster
from oddscope.core.workflows.extraction import extract_features
from oddscope.core.workflows.pipeline import add_source

K = 10
SAMPLED = ("iforest", "lof", "mahalanobis")  # the standard detectors fitted on a sample on the cluster


def bench_extraction(n: int, root: Path) -> dict:
    """Seconds of both extraction paths on ``n`` demo images, loading the encoder included."""
    make_demo(root, n_images=n, seed=0, nuisance_fraction=0.0)
    load = partial(load_encoder, DEFAULT_ENCODER)
    out = {"N": n}
    for name, run in (("single", extract_features),
                      ("cluster", partial(extract_features_on_cluster, load_encoder=load))):
        first = {}

        def note(stage, done, total):  # when the first items were done: start-up apart from throughput
            if done and not first:
                first.update(at=time.perf_counter(), done=done)

        with Project.create(root / f"project-{name}") as project:
            add_source(project, root / "images")
            start = time.perf_counter()
            report = run(project, load(), progress=note)
            end = time.perf_counter()
            out[name] = end - start
            out[f"{name}_first_s"] = first["at"] - start
            out[f"{name}_rate"] = (n - first["done"]) / max(end - first["at"], 1e-9)
            assert report.computed == n, report
    out["overhead"] = out["cluster"] / out["single"] - 1
    return out


def bench_knn(n: int, dim: int, sample: int, pca: int | None = None, seed: int = 0) -> dict:
    """Build once, query every item here and on the cluster; recall@K against exact on ``sample`` items (and,
    with ``pca``, the same for an index of the PCA-reduced features, queried on the cluster)."""
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
    out = {"N": n, "build_s": build_s, "here_s": here_s, "cluster_s": there_s, "recall": _recall(there[rows], exact),
           "identical": bool(np.array_equal(here, there))}
    if pca:
        start = time.perf_counter()
        detector = KnnDetector(k=K, pca=pca).fit(X)  # PCA fit + transform + build, as `index --knn-pca` does
        out["pca_build_s"] = time.perf_counter() - start
        reduced, _ = query_on_cluster(detector.index_, detector.index_input(X), K, exclude_self=True)
        out["pca_recall"] = _recall(reduced[rows], exact)
    return out


def _recall(found, exact) -> float:
    return float(np.mean([len(set(a) & set(b)) / K for a, b in zip(found, exact)]))


def bench_analysis(n: int, dim: int, fit_sample: int, seed: int = 0) -> list[dict]:
    """Each sampled detector fitted and scored here on every item, then on the cluster (fitted on the sample,
    scored in blocks); then the map on the cluster (UMAP on the sample, the rest placed in blocks)."""
    X = gaussian_mixture(n, dim, seed=seed)
    rows = []
    for name in SAMPLED:
        start = time.perf_counter()
        here = make_detector(name).fit(X).score(X, exclude_self=True)
        here_s = time.perf_counter() - start
        start = time.perf_counter()
        there = ClusterScoring(fit_sample, seed)(make_detector(name), X, X, exclude_self=True)
        rows.append({"step": name, "here_s": here_s, "cluster_s": time.perf_counter() - start,
                     "spearman": spearmanr(here, there)[0]})
    start = time.perf_counter()
    coords, _ = map_on_cluster(X, fit_sample, seed)
    assert np.isfinite(coords).all()
    rows.append({"step": "map (UMAP)", "here_s": float("nan"), "cluster_s": time.perf_counter() - start,
                 "spearman": float("nan")})
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, nargs="*", default=[2000, 20_000], help="demo images per run")
    parser.add_argument("--knn-items", type=int, nargs="*", default=[1_000_000], help="synthetic items to score")
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--sample", type=int, default=1000, help="queries checked against exact neighbours")
    parser.add_argument("--knn-pca", type=int, default=None, help="also index the features reduced to N dims")
    parser.add_argument("--analysis-items", type=int, nargs="*", default=[200_000],
                        help="synthetic items for the sampled detectors and the map")
    parser.add_argument("--fit-sample", type=int, default=50_000, help="rows the sampled steps are fitted on")
    args = parser.parse_args(argv)
    import ray

    cpus = os.cpu_count() or 1
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {cpus} cores (timings are wall-clock)", flush=True)
    start = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, logging_level=logging.WARNING)
    print(f"local Ray started in {time.perf_counter() - start:.1f} s (not in the timings below)")
    try:
        if args.images:
            load_encoder(DEFAULT_ENCODER)  # imports and first-load costs out of the first timing
            print(f"\nextraction, {DEFAULT_ENCODER} (first: seconds to the first items done, the start-up; "
                  f"then: img/s after it)\n{'N':>7} {'single s':>9} {'img/s':>7} {'first':>6} {'then':>6} "
                  f"{'cluster s':>10} {'img/s':>7} {'first':>6} {'then':>6} {'overhead':>9}")
            for n in args.images:
                with tempfile.TemporaryDirectory() as tmp:
                    r = bench_extraction(n, Path(tmp))
                print(f"{n:>7} {r['single']:>9.1f} {n / r['single']:>7.1f} {r['single_first_s']:>6.1f} "
                      f"{r['single_rate']:>6.1f} {r['cluster']:>10.1f} {n / r['cluster']:>7.1f} "
                      f"{r['cluster_first_s']:>6.1f} {r['cluster_rate']:>6.1f} {r['overhead']:>+8.0%}", flush=True)
        if args.knn_items:
            print(f"\nkNN scoring, cosine, k={K}, exclude_self, {args.dim}-d, hnswlib M=16 ef_construction=200\n"
                  f"{'N':>9} {'build s':>8} {'query s here':>13} {'query s Ray':>12} {'identical':>9} "
                  f"{f'recall@{K}':>10}")
            for n in args.knn_items:
                r = bench_knn(n, args.dim, args.sample, args.knn_pca)
                print(f"{n:>9} {r['build_s']:>8.1f} {r['here_s']:>13.1f} {r['cluster_s']:>12.1f} "
                      f"{str(r['identical']):>9} {r['recall']:>10.3f}", flush=True)
                if args.knn_pca:
                    print(f"{'':>9} PCA to {args.knn_pca}: build {r['pca_build_s']:.1f} s (PCA included), "
                          f"recall@{K} {r['pca_recall']:.3f} against the exact neighbours of the full features")
        if args.analysis_items:
            print(f"\nanalysis, {args.dim}-d, fitted on {args.fit_sample} rows on the cluster (every row here)\n"
                  f"{'N':>9} {'step':>12} {'here s':>8} {'cluster s':>10} {'spearman':>9}")
            for n in args.analysis_items:
                for r in bench_analysis(n, args.dim, args.fit_sample):
                    print(f"{n:>9} {r['step']:>12} {r['here_s']:>8.1f} {r['cluster_s']:>10.1f} "
                          f"{r['spearman']:>9.3f}", flush=True)
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
