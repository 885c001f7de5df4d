"""Oddscope judged on real images: the protocols of ``../shared/datasets.md`` over every set, one command.

    python benchmarks/quality_suite.py --data /work/data [--cache ~/.cache/oddscope-bench] [--out quality.md]
        [--preprocess STEPS]   # science preprocessing before the encoder, features cached apart

Protocols (fixed seeds; features from the default encoder, extracted once per set by ``quality_sets.py``):

* **one-class detection**: each class that may be normal in turn (every class; only the defect-free one of
  MPDD, ELPV and the demo) is the normal class; a seeded half of it is the ``--reference``, the test set is
  the other half plus a sample of the other classes a quarter its size; kNN (the default detector) in
  reference mode; AUROC and AP per class, averaged per set.
* **rare-class triage** (unsupervised): the bulk plus the planted classes at ~2% each (rule below); every
  standard detector scores the set, the planted items are the anomalies; AUROC / AP.
* **active learning**: the same sets with relevance 1 (bulk), 5 (interesting) and 0 (boring); Oddscope's
  simulated user (``active_eval.simulate``) scores the top 10 of each method's ranking for 10 rounds; the
  prior is the kNN score; 5 seeds, each its own planting (the demo, planted once, varies the jitter of the
  prior instead, as ``oddscope evaluate active`` does).  Relevant items found, and in the final top 100.
* **segmentation**: per-pixel maps through the project workflow (``bench_segmentation.py``): MPDD metal
  plates against their pixel masks (pixel AUROC, PRO), ELPV at image level.
* **nuisance**: ELPV's wafer type on the cached features (``bench_guidance.py``): how well a linear and an
  MLP probe read it, and the kNN defect AUROC, raw and in each guided space (LEACE, the non-linear head).

The planting rule, the same for every set: classes in alphabetical order; with three or more, the first is
interesting, the second boring and the rest the bulk; with two, the defect-free class (MPDD, ELPV) or else
the alphabetically last is the bulk and the other interesting, with no boring class.  Each planted class
gets round(2% of the bulk) items; a set where that is under 5 is left out of the planted protocols (MPDD).
The demo keeps its own truth: its 2,000 images with 2% interesting (5) and 2% artefacts (0).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from quality_sets import DEFECT_SETS, SETS, load_set

from oddscope.core.models.metrics import detection_metrics
from oddscope.core.models.registry import DEFAULT_DETECTORS, RANKERS, make_detector
from oddscope.core.workflows.active_eval import simulate

PLANT_SHARE = 0.02
MIN_PLANTED = 5
SEEDS = 5
BASE = "knn"


def _rng(*keys) -> np.random.Generator:
    return np.random.default_rng([SEEDS, *keys])


def one_class(s, detector=lambda: make_detector(BASE)) -> dict:
    """AUROC and AP of kNN (or of ``detector()``) in reference mode with each normal class in turn:
    ``{class: metrics}``."""
    out = {}
    for c, cls in enumerate(s.normal_classes):
        members, others = np.flatnonzero(s.labels == cls), np.flatnonzero(s.labels != cls)
        rng = _rng(c)
        members = rng.permutation(members)
        reference, normal = members[: members.size // 2], members[members.size // 2:]
        anomalies = rng.choice(others, min(others.size, max(1, normal.size // 4)), replace=False)
        test = np.concatenate([normal, anomalies])
        scores = detector().fit(s.X[reference]).score(s.X[test])
        out[cls] = detection_metrics(scores, np.isin(test, anomalies))
    return out


def planting(s) -> tuple[str, str | None, list] | None:
    """``(interesting, boring, bulk classes)`` by the module's rule, or None when too few would be planted."""
    classes = s.classes
    if len(classes) >= 3:
        interesting, boring, bulk = classes[0], classes[1], classes[2:]
    else:
        bulk_class = DEFECT_SETS.get(s.name, classes[-1])
        interesting, boring, bulk = next(c for c in classes if c != bulk_class), None, [bulk_class]
    if round(PLANT_SHARE * np.isin(s.labels, bulk).sum()) < MIN_PLANTED:
        return None
    return interesting, boring, bulk


def planted_set(s, seed) -> tuple[np.ndarray, np.ndarray] | None:
    """``(item indices, relevance)`` of one planting: the bulk plus seeded samples of the planted classes."""
    if s.name == "demo":
        return np.arange(len(s.labels)), s.relevance
    plan = planting(s)
    if plan is None:
        return None
    interesting, boring, bulk = plan
    bulk_idx = np.flatnonzero(np.isin(s.labels, bulk))
    n_plant = int(round(PLANT_SHARE * bulk_idx.size))
    rng = _rng(seed, 1)
    parts, relevance = [bulk_idx], [np.ones(bulk_idx.size)]
    for cls, value in ((interesting, 5.0), (boring, 0.0)):
        if cls is not None:
            parts.append(rng.choice(np.flatnonzero(s.labels == cls), n_plant, replace=False))
            relevance.append(np.full(n_plant, value))
    order = rng.permutation(sum(p.size for p in parts))
    return np.concatenate(parts)[order], np.concatenate(relevance)[order]


def unsupervised_scores(X, detectors=(BASE,)) -> dict:
    """Each detector's unsupervised scores of ``X`` (fitted on ``X``, no item its own neighbour)."""
    return {name: make_detector(name).fit(X).score(X, exclude_self=True) for name in detectors}


def triage(s) -> dict | None:
    """``{detector: metrics}`` on the first planting (seed 0), planted items as the anomalies."""
    planted = planted_set(s, 0)
    if planted is None:
        return None
    idx, relevance = planted
    return {name: detection_metrics(scores, relevance != 1)
            for name, scores in unsupervised_scores(s.X[idx], DEFAULT_DETECTORS).items()}


def active(s, methods, seeds=SEEDS, log=print) -> dict | None:
    """``{method: {"found": [...], "top100": [...]}}``: one simulated session per planting seed (the demo,
    planted once, runs ``simulate``'s own seeds: its jitter of the anomaly score and the rankers' seeds)."""
    out = {m: {"found": [], "top100": []} for m in methods}
    for seed in range(1 if s.name == "demo" else seeds):
        planted = planted_set(s, seed)
        if planted is None:
            return None
        idx, relevance = planted
        X = s.X[idx]
        anomaly = unsupervised_scores(X)[BASE]
        t0 = time.perf_counter()
        result = simulate(X, anomaly, relevance, methods=methods, seeds=seeds if s.name == "demo" else 1)
        for m, r in result["methods"].items():
            out[m]["found"].append(r["found_mean"])
            out[m]["top100"].append(r["top100_mean"])
        log(f"  {s.name} seed {seed}: " + ", ".join(f"{m} {r['top100_mean']:.1f}" for m, r in
                                                  result["methods"].items()) + f" ({time.perf_counter() - t0:.0f} s)")
    out["_n"] = (int(idx.size), int((relevance >= 4).sum()))
    return out


def segmentation(data_dir: Path) -> list[dict]:
    """``bench_segmentation``'s rows (ours, reference and zero-shot) on MPDD and ELPV, with their splits."""
    from bench_segmentation import bench_set
    from seg_data import elpv_split, mpdd_split

    return (bench_set("mpdd", *mpdd_split(data_dir / "mpdd_metal_plate"), False)
            + bench_set("elpv", *elpv_split(data_dir / "elpv"), False))


def segmentation_table(rows: list[dict]) -> str:
    lines = ["| set | method | image AUROC | pixel AUROC | PRO |", "|---|---|---|---|---|"]
    lines += [f"| {r['set']} | {r['method']} | {_cell(r['image_auroc'])} | {_cell(r['pixel_auroc'])} | "
              f"{_cell(r['pro'])} |" for r in rows]
    return "\n".join(lines)


def nuisance(data_dir: Path, cache: Path) -> dict:
    """``{space: probes and defect AUROC}`` for ELPV's wafer type (``bench_guidance.elpv_methods_part``)."""
    from bench_guidance import elpv_methods_part

    return elpv_methods_part(data_dir, cache)


def nuisance_table(rows: dict) -> str:
    lines = ["| ELPV, nuisance `type` | linear probe | MLP probe | chance | defect AUROC (kNN) |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {_cell(r['probe_linear'])} | {_cell(r['probe_nonlinear'])} | {_cell(r['probe_chance'])} | "
              f"{_cell(r['auroc'])} |" for name, r in rows.items()]
    return "\n".join(lines)


def _mean_row(rows: list) -> list:
    """The column means of table rows (numbers only; a column with a missing value averages the rest)."""
    cols = zip(*rows)
    return [float(np.mean([v for v in col if v is not None])) if any(v is not None for v in col) else None
            for col in cols]


def _cell(v, digits=3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def one_class_table(results: dict) -> str:
    lines = ["| set | normal classes | kNN AUROC (mean) | AP (mean) | worst class (AUROC) |", "|---|---|---|---|---|"]
    rows = []
    for name, per in results.items():
        auroc = [m["auroc"] for m in per.values()]
        ap = [m["average_precision"] for m in per.values()]
        worst = min(per, key=lambda c: per[c]["auroc"])
        rows.append([float(np.mean(auroc)), float(np.mean(ap))])
        lines.append(f"| {name} | {len(per)} | {rows[-1][0]:.3f} | {rows[-1][1]:.3f} | {worst} "
                     f"({per[worst]['auroc']:.3f}) |")
    mean = _mean_row(rows)
    lines.append(f"| **mean** | | **{mean[0]:.3f}** | **{mean[1]:.3f}** | |")
    return "\n".join(lines)


def triage_table(results: dict) -> str:
    detectors = list(DEFAULT_DETECTORS)
    lines = ["| set (AUROC / AP) | " + " | ".join(detectors) + " |", "|---" * (len(detectors) + 1) + "|"]
    rows = []
    for name, per in results.items():
        rows.append([per[d]["auroc"] for d in detectors] + [per[d]["average_precision"] for d in detectors])
        cells = [f"{per[d]['auroc']:.3f} / {per[d]['average_precision']:.3f}" for d in detectors]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    mean = _mean_row(rows)
    k = len(detectors)
    lines.append("| **mean** | " + " | ".join(f"{mean[i]:.3f} / {mean[k + i]:.3f}" for i in range(k)) + " |")
    return "\n".join(lines)


def active_table(results: dict, methods) -> str:
    """Relevant in the final top 100 (and found in 100 labels), mean over the seeds, per set and method."""
    lines = ["| set (items, relevant) | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    rows = []
    for name, per in results.items():
        top = [float(np.mean(per[m]["top100"])) for m in methods]
        found = [float(np.mean(per[m]["found"])) for m in methods]
        rows.append(top + found)
        best = max(top)
        cells = [(f"**{t:.1f}**" if t == best else f"{t:.1f}") + f" ({f:.1f})" for t, f in zip(top, found)]
        n, rel = per["_n"]
        lines.append(f"| {name} ({n}, {rel}) | " + " | ".join(cells) + " |")
    mean = _mean_row(rows)
    k = len(methods)
    lines.append("| **mean** | " + " | ".join(f"{mean[i]:.1f} ({mean[k + i]:.1f})" for i in range(k)) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder with the unpacked sets (../shared/datasets.md)")
    parser.add_argument("--cache", default="~/.cache/oddscope-bench", help="features per set, computed once")
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--protocols", default="one-class,triage,active,segmentation,nuisance")
    parser.add_argument("--methods", default=",".join(RANKERS), help="active-learning methods")
    parser.add_argument("--seeds", type=int, default=SEEDS)
    parser.add_argument("--preprocess", default=None, metavar="STEPS",
                        help="science preprocessing before the encoder, as `oddscope index --preprocess`")
    parser.add_argument("--out", default=None, help="also write the markdown tables to this file")
    args = parser.parse_args(argv)
    protocols = args.protocols.split(",")
    methods = [m for m in args.methods.split(",") if not RANKERS.entry(m).missing()]
    sets = [load_set(name, args.data, args.cache, preprocess=args.preprocess) for name in args.sets.split(",")]
    start = time.perf_counter()
    tables = []
    if "one-class" in protocols:
        tables.append(("One-class detection", one_class_table({s.name: one_class(s) for s in sets})))
    if "triage" in protocols:
        results = {s.name: r for s in sets if (r := triage(s)) is not None}
        tables.append(("Rare-class triage (unsupervised)", triage_table(results)))
    if "active" in protocols:
        results = {s.name: r for s in sets if (r := active(s, methods, args.seeds)) is not None}
        tables.append(("Active learning: relevant in the final top 100 (found in 100 labels)",
                       active_table(results, methods)))
    if "segmentation" in protocols:
        tables.append(("Segmentation (per-pixel maps)", segmentation_table(segmentation(Path(args.data)))))
    if "nuisance" in protocols:
        tables.append(("Nuisance: ELPV's wafer type", nuisance_table(nuisance(Path(args.data),
                                                                              Path(args.cache).expanduser()))))
    load = " ".join(f"{v:.1f}" for v in os.getloadavg())
    text = "\n\n".join(f"**{title}**\n\n{table}" for title, table in tables)
    text += (f"\n\n({time.perf_counter() - start:.0f} s after feature loading; preprocessing "
             f"{args.preprocess or 'none'}; load average {load})\n")
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
