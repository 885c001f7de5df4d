"""Guidance before/after on the demo and on ELPV, and the speed of fitting LEACE and re-scoring.

Each data part indexes a set into a fresh project (features, every detector; no map or clusters),
adds the guided space that erases the nuisance (``oddscope guidance add``) and prints
``oddscope evaluate guidance``: the nuisance probes (linear, MLP, chance), the anomalies' AUROC and
AP, and the share of nuisance-only outliers in the top 50, raw features first.

* demo: the synthetic sky survey with its nuisance-only outliers (``make_demo``: normal galaxies
  under a rare blue sky, 1%); nuisance ``sky_tint``.
* ELPV (``--elpv DIR``, the ``elpv-dataset`` package folder): a seeded sample of ``--n-cells`` cells,
  the wafer ``type`` (mono/poly) as manifest metadata, defective = probability >= 0.5; nuisance ``type``.
* speed: LEACE fit + transform + kNN re-scoring of ``--speed-n`` synthetic ``--dim``-d items.

    python benchmarks/bench_guidance.py --demo 2000 --elpv /work/data/elpv --speed-n 100000
    python benchmarks/bench_guidance.py --speed-n 5000 --dim 256       # a quick check
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from pathlib import Path

import numpy as np

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


def speed_part(n: int, dim: int, seed: int = 0) -> dict:
    """Seconds to fit LEACE on ``n`` x ``dim`` features with a binary nuisance, transform them, and score the
    kNN detector (DN2, k=5, cosine) on the result."""
    from oddscope.core.models.detectors.knn import KnnDetector
    from oddscope.core.models.guidance.erasure import concept_matrix, fit_leace

    rng = np.random.default_rng(seed)
    nuisance = rng.random(n) < 0.3
    X = rng.standard_normal((n, dim), dtype=np.float32)
    X[:, :8] += 2.0 * nuisance[:, None]
    seconds = {}
    t0 = time.perf_counter()
    transform = fit_leace(X, concept_matrix(nuisance)[0])
    seconds["fit"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    erased = transform.apply(X)
    seconds["transform"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    KnnDetector(k=5).fit(erased).score(erased, exclude_self=True)
    seconds["knn re-score"] = time.perf_counter() - t0
    seconds["fit + transform"] = seconds["fit"] + seconds["transform"]
    seconds["total"] = seconds["fit + transform"] + seconds["knn re-score"]
    return {"n": n, "dim": dim, "seconds": seconds}


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
    parser.add_argument("--speed-n", type=int, default=0, help="Synthetic items for the speed part (0: skip).")
    parser.add_argument("--dim", type=int, default=1280)
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
    if args.speed_n:
        results["speed"] = speed_part(args.speed_n, args.dim)
        print(f"\nspeed, {args.speed_n} x {args.dim}: " + ", ".join(
            f"{k} {v:.2f}s" for k, v in results["speed"]["seconds"].items()))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
