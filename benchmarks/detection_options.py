"""What the default detection leaves on the table: the suite's one-class protocol under other options.

    nice -n 19 python benchmarks/detection_options.py --data /work/data [--cache ~/.cache/oddscope-bench]
        [--full lite1]

Option families, each a markdown table (set rows, option columns, AUROC / AP averaged over the normal
classes, the mean over the sets, and the indexing cost of each option against the default):

* **kNN k** (also in unsupervised mode, on the suite's triage planting: the default k serves both) and
  **PCA / whitening before kNN**, on every image's cached default features: PCA fitted on
  the reference half only (never on the test items), to 64 or 256 dimensions, with or without whitening;
  whitening divides by ``sqrt(variance + SHRINK * mean variance)`` so small-variance directions do not
  explode.  Neither touches extraction.
* **Encoder features**, on a seeded sample of ``--per-class`` images per class (extraction under load is the
  cost): EfficientNet-Lite1 and Lite2; test-time horizontal flip (the default encoder's features of the
  image and of its mirror averaged); the final pooled features concatenated with the global-average-pooled
  last stage(s) before the head, each part L2-normalised.  The default's column is measured on the same
  sample, and every option's extraction (decoding included) is timed side by side in one run, so the cost
  row compares like with like; the load average of that run is printed with it.  Features and timings are
  cached in ``CACHE/<set>/options/``.
* ``--full ENCODER``: an encoder the sample favours, scored on every image (one-class and triage), before
  anyone changes a default on 40 images per class.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from quality_sets import SAMPLE_SEED, SETS, ImageSet, _sample, extract, load_set
from quality_suite import one_class, planted_set

from oddscope.core.models.detectors.knn import KnnDetector
from oddscope.core.models.metrics import detection_metrics
from oddscope.core.models.registry import DEFAULT_ENCODER

K_VALUES = (1, 3, 5, 10, 20)
SHRINK = 0.1  # whitening adds this share of the mean variance to every component's variance
PCA_OPTIONS = {"pca64": (64, False), "pca256": (256, False), "pca64-white": (64, True),
               "pca256-white": (256, True)}
PER_CLASS = 40  # extraction of 6 options under load is the cost: about 1,100 images in all
STAGE_SETS = {"layers+320": (-1,), "layers+320+112": (-1, -2)}  # stages (from the last) pooled beside the head
ENCODER_OPTIONS = ("default", "lite1", "lite2", "flip", *STAGE_SETS)


def l2_normalise(X: np.ndarray) -> np.ndarray:
    return (X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)).astype(np.float32)


class ReferencePCA:
    """PCA (optionally whitened, with shrinkage) of L2-normalised features, fitted on the reference only.

    Rank-limited to ``n_reference - 1`` components: a 30-image reference has no 64th direction.
    """

    def __init__(self, n_components: int, whiten: bool, shrink: float = SHRINK):
        self.n_components, self.whiten, self.shrink = n_components, whiten, shrink

    def fit(self, X) -> "ReferencePCA":
        X = l2_normalise(np.asarray(X, dtype=np.float32)).astype(np.float64)
        self.mean_ = X.mean(axis=0)
        _, singular, vt = np.linalg.svd(X - self.mean_, full_matrices=False)
        keep = max(1, min(self.n_components, len(X) - 1, vt.shape[0]))
        self.components_ = vt[:keep]
        variance = singular[:keep] ** 2 / max(len(X) - 1, 1)
        self.scale_ = (1.0 / np.sqrt(variance + self.shrink * variance.mean()) if self.whiten
                       else np.ones(keep))
        return self

    def transform(self, X) -> np.ndarray:
        X = l2_normalise(np.asarray(X, dtype=np.float32)).astype(np.float64)
        return ((X - self.mean_) @ self.components_.T * self.scale_).astype(np.float32)


class ProjectedKnn:
    """kNN behind a :class:`ReferencePCA` fitted on the same (reference) rows.

    Euclidean, not the default cosine: on centred PCA coordinates the cosine would drop the distance from
    the reference mean, and an item far out along a direction would score like one at its centre.
    """

    def __init__(self, n_components: int, whiten: bool):
        self.pca, self.knn = ReferencePCA(n_components, whiten), KnnDetector(metric="l2")

    def fit(self, X) -> "ProjectedKnn":
        self.knn.fit(self.pca.fit(X).transform(X))
        return self

    def score(self, X) -> np.ndarray:
        return self.knn.score(self.pca.transform(X))


def detector_options(s: ImageSet) -> dict:
    """``{option: {class: metrics}}`` of the kNN k and PCA families on the set's cached features."""
    out = {f"k={k}": one_class(s, lambda k=k: KnnDetector(k=k)) for k in K_VALUES}
    out["default"] = one_class(s)
    for name, (dims, whiten) in PCA_OPTIONS.items():
        out[name] = one_class(s, lambda d=dims, w=whiten: ProjectedKnn(d, w))
    return out


def triage_k(s: ImageSet, ks=K_VALUES) -> dict | None:
    """``{f"k={k}": {"planted": metrics}}`` of kNN in unsupervised mode on the suite's triage planting: the
    default's k serves that mode too, so a k chosen on the one-class protocol must not lose here."""
    planted = planted_set(s, 0)
    if planted is None:
        return None
    idx, relevance = planted
    X = s.X[idx]
    return {f"k={k}": {"planted": detection_metrics(KnnDetector(k=k).fit(X).score(X, exclude_self=True),
                                                    relevance != 1)} for k in ks}


def flip_average(encode, images: np.ndarray) -> np.ndarray:
    """Test-time flip: the mean of the features of ``(B, S, S, 3)`` images and of their mirror images."""
    return (encode(images) + encode(np.ascontiguousarray(images[:, :, ::-1]))) / 2


def pooled_stages(stage_maps) -> list:
    """Global-average-pooled ``(B, C, h, w)`` stage maps -> ``(B, C)`` arrays."""
    return [m.mean(dim=(2, 3)).cpu().numpy() for m in stage_maps]


def with_stages(final: np.ndarray, pooled: list) -> np.ndarray:
    """The final features beside pooled stage features, each part L2-normalised so no part dominates."""
    return np.hstack([l2_normalise(final)] + [l2_normalise(p) for p in pooled])


def _extract_options(paths) -> tuple[dict, dict]:
    """``({option: features}, {option: seconds})`` of the images at ``paths``: every encoder option,
    decoding and encoding timed per option in this one run."""
    from oddscope.core.models.encoders import load_encoder
    from oddscope.core.workflows.extraction import decoded_batches

    default, torch_lite0 = load_encoder(), load_encoder(runtime="torch")
    stage_ids = {name: [len(torch_lite0.stages) + i for i in picks] for name, picks in STAGE_SETS.items()}
    n = len(paths)
    features = {name: [None] * n for name in ("default", "flip", *STAGE_SETS)}
    seconds = dict.fromkeys(ENCODER_OPTIONS, 0.0)
    ids = np.arange(n)
    batches = decoded_batches(ids, paths, default)
    while True:
        t0 = time.perf_counter()
        batch = next(batches, None)
        decode = time.perf_counter() - t0
        if batch is None:
            break
        rows, ok, images, _ = batch
        t1 = time.perf_counter()
        final = default.encode(images)
        t2 = time.perf_counter()
        flipped = flip_average(default.encode, images)
        t3 = time.perf_counter()
        seconds["default"] += decode + t2 - t1
        seconds["flip"] += decode + t3 - t1
        for name, stages in stage_ids.items():
            t4 = time.perf_counter()
            pooled = pooled_stages(torch_lite0.stage_features(images, stages))
            seconds[name] += decode + t2 - t1 + time.perf_counter() - t4
            for r, row in zip(rows[ok], with_stages(final, pooled)):
                features[name][r] = row
        for r, a, b in zip(rows[ok], final, flipped):
            features["default"][r], features["flip"][r] = a, b
    for option in ("lite1", "lite2"):
        encoder = load_encoder(f"efficientnet-{option}")  # an OpenVINO export on the first call: not timed
        rows_out = [None] * n
        t0 = time.perf_counter()
        for rows, ok, images, _ in decoded_batches(ids, paths, encoder):
            for r, row in zip(rows[ok], encoder.encode(images)):
                rows_out[r] = row
        seconds[option] = time.perf_counter() - t0
        features[option] = rows_out
    return {k: np.stack(v) for k, v in features.items()}, seconds


def encoder_options(s: ImageSet, cache: Path, per_class: int, log=print) -> tuple[dict, dict]:
    """``({option: {class: metrics}}, {option: seconds})`` on a seeded sample of the set (cached)."""
    keep = _sample(s.labels, per_class, SAMPLE_SEED)
    folder = cache / s.name / "options"
    key = {"per_class": per_class, "seed": SAMPLE_SEED, "n": int(keep.size), "default": DEFAULT_ENCODER,
           "options": list(ENCODER_OPTIONS)}
    meta_file = folder / "meta.json"
    if meta_file.is_file() and json.loads(meta_file.read_text())["key"] == key:
        meta = json.loads(meta_file.read_text())
        features = {name: np.load(folder / f"{name}.npy") for name in ENCODER_OPTIONS}
    else:
        log(f"{s.name}: extracting {len(ENCODER_OPTIONS)} options of {keep.size} images (cached in {folder})")
        features, seconds = _extract_options([s.paths[i] for i in keep])
        folder.mkdir(parents=True, exist_ok=True)
        for name, X in features.items():
            np.save(folder / f"{name}.npy", X)
        meta = {"key": key, "seconds": seconds, "load": os.getloadavg()}
        meta_file.write_text(json.dumps(meta))
    labels = s.labels[keep]
    results = {name: one_class(ImageSet(s.name, X, labels, [], s.normal_classes)) for name, X in features.items()}
    return results, meta


def full_encoder(s: ImageSet, cache: Path, encoder: str, log=print) -> tuple[dict, dict, dict | None]:
    """``(one-class, meta, triage)`` of the default and ``encoder`` on every image of the set, each result
    ``{"default"|encoder: ...}``: the check of an encoder that the sample favours, before a default could
    change (features and seconds cached; triage None where the set is too small to plant in)."""
    folder = cache / s.name / "options"
    feature_file, meta_file = folder / f"full-{encoder}.npy", folder / f"full-{encoder}.json"
    key = {"n": len(s.paths), "encoder": encoder}
    if meta_file.is_file() and json.loads(meta_file.read_text())["key"] == key:
        X, meta = np.load(feature_file), json.loads(meta_file.read_text())
    else:
        log(f"{s.name}: extracting {encoder} features of all {len(s.paths)} images (cached in {folder})")
        t0 = time.perf_counter()
        X, readable = extract(s.paths, f"efficientnet-{encoder}")
        meta = {"key": key, "seconds": time.perf_counter() - t0, "load": os.getloadavg()}
        if not readable.all():
            raise RuntimeError(f"{s.name}: {encoder} could not read images the default read")
        folder.mkdir(parents=True, exist_ok=True)
        np.save(feature_file, X)
        meta_file.write_text(json.dumps(meta))
    other = ImageSet(s.name, X, s.labels, s.paths, s.normal_classes, s.relevance)
    triage = triage_k(s, (5,)) and {"default": triage_k(s, (5,))["k=5"], encoder: triage_k(other, (5,))["k=5"]}
    return {"default": one_class(s), encoder: one_class(other)}, meta, triage


def _mean(per: dict, metric: str) -> float:
    return float(np.mean([m[metric] for m in per.values()]))


def option_table(results: dict, options, cost_row: str) -> str:
    """Set rows, option columns (AUROC / AP, the set's best AUROC in bold), the mean row and the cost row."""
    lines = ["| set | " + " | ".join(options) + " |", "|---" * (len(options) + 1) + "|"]
    means = {o: ([], []) for o in options}
    for name, per in results.items():
        cells = {o: (_mean(per[o], "auroc"), _mean(per[o], "average_precision")) for o in options}
        best = max(a for a, _ in cells.values())
        for o, (a, p) in cells.items():
            means[o][0].append(a)
            means[o][1].append(p)
        lines.append(f"| {name} | " + " | ".join((f"**{a:.3f}**" if a == best else f"{a:.3f}") + f" / {p:.3f}"
                                               for a, p in cells.values()) + " |")
    mean_auroc = {o: float(np.mean(a)) for o, (a, _) in means.items()}
    top = max(mean_auroc.values())
    lines.append("| **mean** | " + " | ".join((f"**{mean_auroc[o]:.3f}**" if mean_auroc[o] == top else
                                              f"{mean_auroc[o]:.3f}") + f" / {np.mean(p):.3f}"
                                             for o, (_, p) in means.items()) + " |")
    return "\n".join(lines + [cost_row])


def encoder_cost_row(metas: list, options) -> str:
    """Images/s of each option's extraction over all sets, and its time against the default's."""
    images = sum(m["key"]["n"] for m in metas)
    seconds = {o: sum(m["seconds"][o] for m in metas) for o in options}
    return "| indexing cost (images/s, x default) | " + " | ".join(
        f"{images / seconds[o]:.0f} ({seconds[o] / seconds['default']:.2f}x)" for o in options) + " |"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder with the unpacked sets (../shared/datasets.md)")
    parser.add_argument("--cache", default="~/.cache/oddscope-bench", help="features per set, computed once")
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--per-class", type=int, default=PER_CLASS, help="images per class for encoder options")
    parser.add_argument("--families", default="detector,encoder")
    parser.add_argument("--full", default=None, help="also score this encoder option (lite1, lite2) on every image")
    parser.add_argument("--out", default=None, help="also write the markdown tables to this file")
    args = parser.parse_args(argv)
    cache = Path(args.cache).expanduser()
    sets = [load_set(name, args.data, cache) for name in args.sets.split(",")]
    tables = []
    same_cost = "| indexing cost | " + " | ".join(["1.00x (extraction unchanged)"] * 5) + " |"
    if "detector" in args.families:
        results = {s.name: detector_options(s) for s in sets}
        tables.append(("kNN k (every image; default k=5, cosine)",
                       option_table(results, [f"k={k}" for k in K_VALUES], same_cost)))
        triage = {s.name: r for s in sets if (r := triage_k(s)) is not None}
        tables.append(("kNN k in unsupervised mode (the suite's rare-class triage)",
                       option_table(triage, [f"k={k}" for k in K_VALUES], same_cost)))
        tables.append((f"PCA / whitening before kNN, fitted on the reference half (shrink {SHRINK})",
                       option_table(results, ["default", *PCA_OPTIONS], same_cost)))
    if "encoder" in args.families:
        per_set = {s.name: encoder_options(s, cache, args.per_class) for s in sets}
        metas = [meta for _, meta in per_set.values()]
        loads = sorted({" ".join(f"{v:.1f}" for v in m["load"]) for m in metas})
        tables.append((f"Encoder features ({args.per_class} images per class at most; extraction load average "
                       f"{'; '.join(loads)} on 2 cores)",
                       option_table({name: r for name, (r, _) in per_set.items()}, ENCODER_OPTIONS,
                                    encoder_cost_row(metas, ENCODER_OPTIONS))))
    if args.full:
        per_set = {s.name: full_encoder(s, cache, args.full) for s in sets}
        images = sum(meta["key"]["n"] for _, meta, _ in per_set.values())
        rate = images / sum(meta["seconds"] for _, meta, _ in per_set.values())
        cost = f"| extraction (images/s) | (sample above) | {rate:.0f} |"
        tables.append((f"{args.full} on every image (the suite's own sample)",
                       option_table({name: r for name, (r, _, _) in per_set.items()}, ["default", args.full], cost)))
        tables.append((f"{args.full} on every image, unsupervised (the suite's rare-class triage, kNN)",
                       option_table({name: t for name, (_, _, t) in per_set.items() if t}, ["default", args.full],
                                    "| indexing cost | 1.00x | (as above) |")))
    text = "\n\n".join(f"**{title}**\n\n{table}" for title, table in tables)
    text += f"\n\n(load average now {' '.join(f'{v:.1f}' for v in os.getloadavg())})\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
