"""Guidance before/after on the demo and on ELPV, and the speed of fitting LEACE and re-scoring.

Each data part indexes a set into a fresh project (features, every detector; no map or clusters),
adds the guided space that erases the nuisance (``oddscope guidance add``) and prints
``oddscope evaluate guidance``: the nuisance probes (linear, MLP, chance), the anomalies' AUROC and
AP, and the share of nuisance-only outliers in the top 50, raw features first.

* demo: the synthetic sky survey with its nuisance-only outliers (``make_demo``: normal galaxies
  under a rare blue sky, 1%); nuisance ``sky_tint``.
* ELPV (``--elpv DIR``, the ``elpv-dataset`` package folder): a seeded sample of ``--n-cells`` cells,
  the wafer ``type`` (mono/poly) as manifest metadata, defective = probability >= 0.5; nuisance ``type``.
* methods on ELPV (``--elpv-methods DATA``, the folder holding ``elpv/``): the features cached by
  ``quality_sets.py`` (1,600 cells, 800 functional and 800 defective, efficientnet-lite0), the ``type``
  nuisance erased by LEACE and by the non-linear head (``--method nonlinear``): the probes and the kNN
  defect AUROC, raw vs LEACE vs nonlinear, with the seconds of each fit.
* speed: LEACE fit + transform + the space's distance basis + kNN re-scoring of ``--speed-n`` items,
  as ``oddscope guidance add`` does them (``core.workflows.spaces``: 256 principal directions + the mean).
  ``--speed-data gaussian`` (default): synthetic ``--dim``-d Gaussian noise, a worst case: its intrinsic
  dimension is the full width, where encoder features have a few dozen: 256 directions hold a fifth of
  its variance, so the space keeps its full width (the basis would scramble its kNN scores) and hnswlib's
  graph is slow to build in it.  ``--speed-data real``: the cached encoder
  features of the quality sets (``quality_sets.py``, ``--cache``) tiled to ``--speed-n`` rows, each copy
  jittered by a tenth of the difference of two random rows (noise with the features' own spectrum);
  nuisance: which set a row came from.  Both report the recall of the reduced kNN against exact
  full-dimension neighbours on a sample of rows.

    python benchmarks/bench_guidance.py --demo 2000 --elpv /work/data/elpv --speed-n 100000
    python benchmarks/bench_guidance.py --speed-n 100000 --speed-data real    # encoder-like features
    python benchmarks/bench_guidance.py --speed-n 5000 --dim 256       # a quick check
    nice -n 19 python benchmarks/bench_guidance.py --elpv-methods /work/data   # ~2 min on a busy 2-core machine
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from oddscope.core.project.store import Project


def guided_evaluation(images_csv: Path, truth_csv: Path, project_dir: Path, nuisance: str) -> dict:
    """Index ``images_csv`` (a manifest), add the space erasing ``nuisance``, evaluate; with timings."""
    from oddscope.core.workflows.guidance import add_space
    from oddscope.core.workflows.guidance_eval import evaluate_guidance
    from oddscope.core.workflows.pipeline import IndexOptions, index_images

    timings = {}
    with Project.create(project_dir) as project:
        t0 = time.perf_counter()
        index_images(project, images_csv, options=IndexOptions(make_map=False, make_clusters=False))
        timings["index"] = time.perf_counter() - t0
        spec = add_space(project, f"no-{nuisance}", nuisance)
        timings["guidance add (fit, probes, every detector)"] = spec["seconds"]
        result = evaluate_guidance(project, truth_csv, nuisance)
    result["seconds"] = timings
    return result


def demo_part(n_images: int, work: Path) -> dict:
    from oddscope.core.data.demo import make_demo

    demo = make_demo(work / "demo", n_images=n_images, seed=0)
    return guided_evaluation(demo.manifest_csv, demo.truth_csv, work / "demo" / "project", "sky_tint")


def elpv_part(root: Path, n_cells: int, work: Path, seed: int = 0) -> dict:
    """A seeded sample of ELPV cells, all of them test images (unsupervised), ``type`` as metadata."""
    data = root / "elpv_dataset" / "data"
    rows = [line.split() for line in (data / "labels.csv").read_text().splitlines() if line.strip()]
    rng = np.random.default_rng(seed)
    rows = [rows[i] for i in sorted(rng.choice(len(rows), min(n_cells, len(rows)), replace=False))]
    folder = work / "elpv"
    folder.mkdir(parents=True, exist_ok=True)
    manifest, truth = folder / "manifest.csv", folder / "truth.csv"
    with open(manifest, "w", newline="") as fm, open(truth, "w", newline="") as ft:
        m, t = csv.writer(fm), csv.writer(ft)
        m.writerow(("path", "type"))
        t.writerow(("path", "is_anomaly", "category"))
        for path, probability, kind in rows:
            defective = float(probability) >= 0.5
            m.writerow((str(data / path), kind))
            t.writerow((str(data / path), int(defective), "defect" if defective else "normal"))
    return guided_evaluation(manifest, truth, folder / "project", "type")


def elpv_methods_part(data_dir: Path, cache: Path) -> dict:
    """Probes of the wafer ``type`` and kNN defect AUROC on ELPV's cached features: raw, LEACE and the head."""
    from quality_sets import load_set

    from oddscope.core.models.detectors.knn import KnnDetector
    from oddscope.core.models.guidance.erasure import concept_matrix, fit_leace
    from oddscope.core.models.guidance.head import fit_head
    from oddscope.core.models.guidance.probes import probe_nuisance
    from oddscope.core.models.metrics import detection_metrics

    cells = load_set("elpv", data_dir, cache)
    labels = data_dir / "elpv" / "elpv_dataset" / "data"
    wafer = {str(labels / row[0]): row[2] for row in
             (line.split() for line in (labels / "labels.csv").read_text().splitlines() if line.strip())}
    values = np.array([wafer[path] for path in cells.paths], dtype=object)
    defective = cells.labels != "functional"
    Z, kind = concept_matrix(values)
    fits = {"raw": lambda X: X, "leace": lambda X: fit_leace(X, Z).apply(X),
            "nonlinear": lambda X: fit_head(X, Z, kind).apply(X)}
    rows = {}
    for name, fit in fits.items():
        t0 = time.perf_counter()
        X = fit(cells.X)
        seconds = time.perf_counter() - t0
        scores = KnnDetector().fit(X).score(X, exclude_self=True)
        rows[name] = {**probe_nuisance(X, values), "auroc": detection_metrics(scores, defective, ks=())["auroc"],
                      "seconds": seconds}
    return rows


def gaussian_features(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(X, nuisance)``: ``n`` x ``dim`` Gaussian noise, a binary nuisance shifting 8 dimensions."""
    rng = np.random.default_rng(seed)
    nuisance = rng.random(n) < 0.3
    X = rng.standard_normal((n, dim), dtype=np.float32)
    X[:, :8] += 2.0 * nuisance[:, None]
    return X, nuisance


def real_like_features(n: int, cache: Path, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(X, nuisance)``: the cached features of every quality set tiled to ``n`` rows and jittered by a tenth
    of the difference of two random rows; the nuisance is the set a row came from."""
    sets = sorted(p for p in Path(cache).expanduser().glob("*/features.npy"))
    if not sets:
        raise SystemExit(f"no cached features under {cache}: run benchmarks/quality_sets.py DATA {cache} first")
    parts = [np.load(p).astype(np.float32) for p in sets]
    width = max(len(p[0]) for p in parts)
    parts = [p for p in parts if p.shape[1] == width]
    source = np.concatenate([np.full(len(p), i) for i, p in enumerate(parts)])
    pool = np.concatenate(parts)
    rng = np.random.default_rng(seed)
    rows, a, b = (rng.integers(0, len(pool), n) for _ in range(3))
    X = pool[rows]
    for start in range(0, n, 16_384):  # in blocks: no second n x d temporary
        stop = min(start + 16_384, n)
        X[start:stop] += 0.1 * (pool[a[start:stop]] - pool[b[start:stop]])
    return X, source[rows]


def speed_part(X: np.ndarray, nuisance: np.ndarray, recall_rows: int = 500, seed: int = 0) -> dict:
    """Seconds to fit LEACE on ``X`` with ``nuisance``, transform, fit the space's distance basis and score the
    kNN detector (DN2, k=5, cosine) in it; on ``recall_rows`` rows, hnswlib's recall against exact neighbours
    in the basis, and the rank correlation of the scores with exact full-width ones."""
    from oddscope.core.models.detectors.knn import KnnDetector
    from oddscope.core.models.guidance.erasure import concept_matrix, fit_leace
    from oddscope.core.workflows.spaces import fit_basis, in_basis

    seconds = {}
    t0 = time.perf_counter()
    transform = fit_leace(X, concept_matrix(nuisance)[0])
    seconds["fit"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    erased = transform.apply(X)
    seconds["transform"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    basis = fit_basis(erased)
    features = in_basis(basis, erased)
    seconds["basis"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    detector = KnnDetector(k=5).fit(features)
    detector.score(features, exclude_self=True)
    seconds["knn re-score"] = time.perf_counter() - t0
    seconds["total"] = sum(seconds.values())
    rows = np.random.default_rng(seed).choice(len(X), min(recall_rows, len(X)), replace=False)
    found, found_dist = detector.index_.query_rows(rows, 5)
    exact = _exact_neighbours(features, rows)[0]
    recall = float(np.mean([len(set(f) & set(e)) / 5 for f, e in zip(found, exact)]))
    full_scores = _exact_neighbours(erased, rows)[1].mean(axis=1)
    spearman = float(spearmanr(full_scores, found_dist.mean(axis=1))[0])
    return {"n": len(X), "dim": X.shape[1], "dims": features.shape[1], "hnsw recall@5": recall,
            "score spearman vs full width": spearman, "seconds": seconds}


def _exact_neighbours(X: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The exact 5 nearest cosine neighbours of ``X[rows]`` among the other rows of ``X``: (ids, distances)."""
    from oddscope.core.models.knn import brute_force_knn

    ids, dist = brute_force_knn(X, X[rows], 6, "cosine")
    others = ids != rows[:, None]
    others[others.all(axis=1), -1] = False  # a duplicate pushed the row itself out: drop the farthest
    return ids[others].reshape(len(rows), 5), dist[others].reshape(len(rows), 5)


def table(name: str, result: dict) -> str:
    from oddscope.core.workflows.guidance_eval import guidance_table

    return (f"\n{name}: {result['n_items']} items, {result['n_anomalies']} anomalies, "
            f"{result['n_nuisance_outliers']} nuisance-only outliers; nuisance {result['nuisance']}\n"
            + guidance_table(result) + "\n" + json.dumps(result["seconds"]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=int, default=0, help="Demo survey images (0: skip).")
    parser.add_argument("--elpv", type=Path, default=None, help="The elpv-dataset folder (skip when absent).")
    parser.add_argument("--n-cells", type=int, default=800)
    parser.add_argument("--elpv-methods", type=Path, default=None,
                        help="Data folder holding elpv/: LEACE vs the non-linear head on the cached features.")
    parser.add_argument("--cache", type=Path, default=Path("~/.cache/oddscope-bench"),
                        help="quality_sets.py's feature cache (--elpv-methods, --speed-data real).")
    parser.add_argument("--speed-n", type=int, default=0, help="Synthetic items for the speed part (0: skip).")
    parser.add_argument("--speed-data", choices=("gaussian", "real"), default="gaussian",
                        help="Speed part's features: Gaussian noise, or the quality sets' cached features tiled.")
    parser.add_argument("--dim", type=int, default=1280, help="Width of the Gaussian features.")
    parser.add_argument("--work", type=Path, default=None, help="Folder for the projects [default: a temporary one].")
    parser.add_argument("--json", type=Path, default=None, help="Also write every result here.")
    args = parser.parse_args(argv)

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        if args.demo:
            results["demo"] = demo_part(args.demo, work)
            print(table("demo", results["demo"]), flush=True)
        if args.elpv:
            results["elpv"] = elpv_part(args.elpv, args.n_cells, work)
            print(table("ELPV", results["elpv"]), flush=True)
    if args.elpv_methods:
        results["elpv_methods"] = elpv_methods_part(args.elpv_methods, args.cache)
        header = f"{'space':<10}{'probe lin':>10}{'probe MLP':>10}{'chance':>8}{'AUROC':>8}{'s':>6}"
        print(f"\nELPV, nuisance type: {header}")
        for name, row in results["elpv_methods"].items():
            print(f"{'':<21}{name:<10}{row['probe_linear']:>10.3f}{row['probe_nonlinear']:>10.3f}"
                  f"{row['probe_chance']:>8.3f}{row['auroc']:>8.3f}{row['seconds']:>6.1f}", flush=True)
    if args.speed_n:
        X, nuisance = (gaussian_features(args.speed_n, args.dim) if args.speed_data == "gaussian"
                       else real_like_features(args.speed_n, args.cache))
        speed = results["speed"] = {"data": args.speed_data, **speed_part(X, nuisance)}
        print(f"\nspeed, {args.speed_data} {speed['n']} x {speed['dim']} (kNN in {speed['dims']} dims; hnsw recall@5 "
              f"{speed['hnsw recall@5']:.4f}, score Spearman vs full width {speed['score spearman vs full width']:.4f}"
              "): " + ", ".join(f"{k} {v:.2f}s" for k, v in speed["seconds"].items()))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
