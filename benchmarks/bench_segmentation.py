"""Per-pixel maps on sets with pixel masks: ours (reference, zero-shot, exhaustive bank) beside anomalib's PatchCore.

    python benchmarks/bench_segmentation.py --mpdd /work/data/mpdd_metal_plate --folder oddscope-inspection \
        --elpv DIR   # DIR: the elpv-dataset wheel unpacked (`pip download elpv-dataset`, unzip)
    /work/venvs/anomalib/bin/python benchmarks/bench_segmentation.py --mpdd ... --anomalib   # adds PatchCore

Every method sees the same split (known-normal reference images, test images with
masks; see ``seg_data.py``) and the same backbone weights (EfficientNet-Lite0, the
packaged ImageNet weights), and every map is scored by the same code
(:func:`oddscope.core.models.segmentation_metrics.segmentation_report`, maps and
masks at most 256 px on the long side, as ``oddscope evaluate segmentation``).
Ours runs through the project workflow a user runs (``index --reference``, then
``maps compute``); "fit" is the map model (reference patches, coreset,
calibration), "ms/img" the maps of the test images.  The image-level kNN of
``oddscope index`` is listed for comparison (image AUROC only).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from seg_data import elpv_split, folder_split, load_mask, mpdd_split

from oddscope.core.models.patches.scorer import MapSettings
from oddscope.core.models.segmentation_metrics import resize_map, segmentation_report
from oddscope.core.project.layout import score_array
from oddscope.core.project.store import Project
from oddscope.core.workflows.pipeline import IndexOptions, index_images
from oddscope.core.workflows.segmentation import PixelMaps

MAX_SIDE = 256


def _manifest(paths, path: Path) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path"])
        writer.writerows([p] for p in paths)
    return path


def score(maps, image_scores, test_paths, mask_paths) -> dict:
    """The MVTec table row of one method, maps and masks at most MAX_SIDE px on the long side."""
    resized, masks = [], []
    for anomaly_map, path, mask_path in zip(maps, test_paths, mask_paths, strict=True):
        with Image.open(path) as image:
            width, height = image.size
        scale = min(1.0, MAX_SIDE / max(width, height))
        shape = (max(1, round(height * scale)), max(1, round(width * scale)))
        mask = load_mask(mask_path, (height, width))
        masks.append(np.asarray(Image.fromarray(mask).resize(shape[::-1], Image.Resampling.NEAREST), bool))
        resized.append(resize_map(np.asarray(anomaly_map, np.float32), shape))
    return segmentation_report(resized, masks, np.asarray(image_scores, np.float64))


def run_ours(reference, test, work: Path, variants) -> dict:
    """Index the split once, then fit and compute maps for each variant ``(name, mode, settings)``."""
    with Project.create(work / "project") as project:
        t0 = time.perf_counter()
        index_images(project, _manifest(test, work / "test.csv"), _manifest(reference, work / "ref.csv"),
                     IndexOptions(detectors=("knn",), make_map=False, make_clusters=False))
        index_seconds = time.perf_counter() - t0
        ids = np.array([project.item_id(p) for p in test])
        knn = project.load_array(score_array("knn"))[ids]
        results = {"kNN, image level (index)": {"image_scores": knn, "maps": None, "fit_s": index_seconds}}
        for name, mode, settings in variants:
            pixel_maps = PixelMaps(project)
            t0 = time.perf_counter()
            pixel_maps.fit(mode, settings)
            fit_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            pixel_maps.compute(ids, num_workers=0)
            per_image = 1000 * (time.perf_counter() - t0) / len(ids)
            results[name] = {"image_scores": pixel_maps.scores()[ids], "maps": [pixel_maps.map(i) for i in ids],
                             "fit_s": fit_s, "ms_per_image": per_image,
                             "bank": (PixelMaps(project).scorer.bank.shape[0] if mode == "reference" else None)}
    return results


def bench_set(name, reference, test, masks, with_anomalib: bool) -> list[dict]:
    pixel_truth = not all(isinstance(m, bool) for m in masks)
    variants = [("oddscope reference", "reference", MapSettings())]
    if pixel_truth:  # the exhaustive bank is about the coreset's cost and its effect on the maps
        variants.append(("oddscope reference, whole bank", "reference", MapSettings(coreset_ratio=1.0, max_bank=10**9)))
    variants.append(("oddscope zero-shot", "zero-shot", MapSettings()))
    with tempfile.TemporaryDirectory() as work:
        results = run_ours(reference, test, Path(work), variants)
    if with_anomalib:
        from anomalib_patchcore import run_anomalib_patchcore

        out = run_anomalib_patchcore(reference, test)
        results["anomalib PatchCore"] = {"image_scores": out["image_scores"], "maps": out["maps"],
                                         "fit_s": out["seconds"]["fit"], "ms_per_image": out["seconds"]["per_image_ms"],
                                         "bank": out["config"]["memory_bank"][0]}
    labels = np.array([m if isinstance(m, bool) else m is not None for m in masks])
    rows = []
    for method, r in results.items():
        if r["maps"] is None or not pixel_truth:
            from oddscope.core.models.segmentation_metrics import image_auroc

            row = {"image_auroc": image_auroc(r["image_scores"], labels), "pixel_auroc": None, "pro": None}
        else:
            row = score(r["maps"], r["image_scores"], test, masks)
        rows.append({"set": name, "method": method, **row, "fit_s": round(r["fit_s"], 1),
                     "ms_per_image": round(r.get("ms_per_image") or 0, 1) or None, "bank": r.get("bank"),
                     "n_reference": len(reference), "n_test": len(test), "n_defective": int(labels.sum())})
        print(_line(rows[-1]), flush=True)
    return rows


def _line(row: dict) -> str:
    def f(v):
        return "   -  " if v is None else f"{v:6.3f}"
    return (f"{row['set']:<12} {row['method']:<32} image {f(row['image_auroc'])}  pixel {f(row['pixel_auroc'])}  "
            f"PRO {f(row['pro'])}  fit {row['fit_s']:>6.1f} s  {row['ms_per_image'] or 0:>6.1f} ms/img  "
            f"bank {row['bank'] or '-'}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mpdd", help="MPDD metal plates folder (labels.csv with a mask column)")
    parser.add_argument("--folder", action="append", default=[], help="a reference/ images/ masks/ set")
    parser.add_argument("--elpv", help="the unpacked elpv-dataset wheel (image-level truth only)")
    parser.add_argument("--anomalib", action="store_true", help="also run anomalib's PatchCore")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.2f} at start; {os.cpu_count()} cores", flush=True)
    sets = ([("mpdd", *mpdd_split(args.mpdd))] if args.mpdd else []) + [
        (Path(d).name, *folder_split(d)) for d in args.folder] + ([("elpv", *elpv_split(args.elpv))] if args.elpv else [])
    rows = [row for name, *split in sets for row in bench_set(name, *split, args.anomalib)]
    print(f"load average {os.getloadavg()[0]:.2f} at end", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2, default=float))


if __name__ == "__main__":
    main()
