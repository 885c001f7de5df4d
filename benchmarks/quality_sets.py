"""The real image sets of the quality suite (``../shared/datasets.md``) and their cached features.

    from quality_sets import load_set; image_set = load_set("flowers", "/work/data", cache)

Every set becomes an :class:`ImageSet`: the images' features from Oddscope's default encoder (extracted once
through the same decoding as ``oddscope index``, then read from ``CACHE/<set>/``), one class name per image,
and the facts the protocols need: which classes may serve as "normal", and the demo's own relevance scores.
Large sets are subsampled to at most ``PER_CLASS`` images per class (seeded), so a full run stays within
minutes on a 2-core machine; the sample, the encoder and the science preprocessing (if any) are part of the
cache key.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from oddscope.core.data.demo import RELEVANCE, make_demo
from oddscope.core.data.science import NO_STEPS, ScienceSteps
from oddscope.core.models.registry import DEFAULT_ENCODER

PER_CLASS = 800  # images per class at most: extraction (~50 images/s here) is the suite's cost
SAMPLE_SEED = 0
SETS = ("demo", "flowers", "neu_surface", "brain_mri", "star_galaxy", "mpdd_metal_plate", "elpv")
# Sets with one defect-free class: only that class is "normal" in the one-class protocol.
DEFECT_SETS = {"mpdd_metal_plate": "good", "elpv": "functional", "demo": "normal"}


@dataclass
class ImageSet:
    """One set's features and classes; ``relevance`` only where the set defines it (the demo)."""

    name: str
    X: np.ndarray  # (n, d) float32 encoder features
    labels: np.ndarray  # (n,) class name per image
    paths: list
    normal_classes: tuple  # classes the one-class protocol takes as normal in turn
    relevance: np.ndarray | None = None

    @property
    def classes(self) -> list:
        return sorted(set(self.labels.tolist()))


def _labels_csv(root: Path) -> tuple[list, list]:
    with open(root / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [str(root / r["path"]) for r in rows], [r["label"] for r in rows]


def _elpv(root: Path) -> tuple[list, list]:
    """ELPV: ``functional`` (defect probability 0) or ``defective`` (>= 0.5); the unsure 0.33 cells are left out."""
    data = root / "elpv_dataset" / "data"
    rows = [line.split() for line in (data / "labels.csv").read_text().splitlines() if line.strip()]
    rows = [r for r in rows if float(r[1]) == 0.0 or float(r[1]) >= 0.5]
    return [str(data / r[0]) for r in rows], ["functional" if float(r[1]) == 0.0 else "defective" for r in rows]


def _demo(cache: Path) -> tuple[list, list, np.ndarray]:
    """The synthetic sky survey of ``oddscope demo`` (2,000 cutouts, seed 0), written once under the cache."""
    root = cache / "demo" / "images_root"
    if not (root / "truth.csv").is_file():
        make_demo(root)
    with open(root / "truth.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    relevance = np.array([RELEVANCE[r["category"]] for r in rows], dtype=np.float64)
    return [str(root / r["path"]) for r in rows], [r["category"] for r in rows], relevance


def _sample(labels: list, per_class: int, seed: int) -> np.ndarray:
    """Indices of at most ``per_class`` images of each class (seeded), in the set's order."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    keep = []
    for cls in sorted(set(labels.tolist())):
        members = np.flatnonzero(labels == cls)
        keep.append(members if members.size <= per_class else rng.choice(members, per_class, replace=False))
    return np.sort(np.concatenate(keep))


def extract(paths, encoder_name: str = DEFAULT_ENCODER,
            steps: ScienceSteps = NO_STEPS) -> tuple[np.ndarray, np.ndarray]:
    """``(features, readable)`` of the images at ``paths``, decoded (through the science ``steps``) and encoded
    as ``oddscope index --preprocess STEPS`` does."""
    from oddscope.core.models.encoders import load_encoder
    from oddscope.core.workflows.extraction import decoded_batches

    encoder = load_encoder(encoder_name)
    X = np.zeros((len(paths), encoder.dim), dtype=np.float32)
    readable = np.zeros(len(paths), dtype=bool)
    for ids, ok, images, _ in decoded_batches(np.arange(len(paths)), paths, encoder, steps=steps):
        if ok.any():
            X[ids[ok]] = encoder.encode(images)
            readable[ids[ok]] = True
    return X, readable


def load_set(name: str, data_dir, cache, encoder_name: str = DEFAULT_ENCODER, log=print,
             preprocess: str | None = None) -> ImageSet:
    """The set ``name`` with its features, extracted on the first call and read from ``cache`` after.

    ``preprocess``: science steps before the encoder (``oddscope index --preprocess``); their features are
    cached apart, in ``CACHE/<set>@<steps>/``, and the steps are part of the key.
    """
    steps = ScienceSteps.parse(preprocess)
    data_dir, cache = Path(data_dir), Path(cache).expanduser()
    relevance = None
    if name == "demo":
        paths, labels, relevance = _demo(cache)
    elif name == "elpv":
        paths, labels = _elpv(data_dir / "elpv")
    else:
        paths, labels = _labels_csv(data_dir / name)
    keep = np.arange(len(paths)) if name == "demo" else _sample(labels, PER_CLASS, SAMPLE_SEED)
    paths = [paths[i] for i in keep]
    labels = np.asarray(labels)[keep]
    relevance = None if relevance is None else relevance[keep]
    folder = cache / (f"{name}@{str(steps).replace(',', '+')}" if steps else name)
    key = {"encoder": encoder_name, "per_class": PER_CLASS, "seed": SAMPLE_SEED, "n": len(paths)}
    if steps:  # without steps the key stays as it was, so existing caches stay valid
        key["preprocess"] = str(steps)
    meta_file, feature_file = folder / "meta.json", folder / "features.npy"
    if meta_file.is_file() and feature_file.is_file() and json.loads(meta_file.read_text())["key"] == key:
        meta = json.loads(meta_file.read_text())
        X, readable = np.load(feature_file), np.asarray(meta["readable"], dtype=bool)
    else:
        log(f"{name}: extracting features of {len(paths)} images (once; cached in {folder})")
        X, readable = extract(paths, encoder_name, steps)
        folder.mkdir(parents=True, exist_ok=True)
        np.save(feature_file, X)
        meta_file.write_text(json.dumps({"key": key, "readable": readable.tolist()}))
    paths = [p for p, ok in zip(paths, readable) if ok]
    labels, X = labels[readable], X[readable]
    relevance = None if relevance is None else relevance[readable]
    normal = (DEFECT_SETS[name],) if name in DEFECT_SETS else tuple(sorted(set(labels.tolist())))
    return ImageSet(name, X, labels, paths, normal, relevance)


if __name__ == "__main__":  # extract every set's features ahead of a run: python quality_sets.py DATA CACHE
    import sys

    for set_name in SETS:
        s = load_set(set_name, sys.argv[1], sys.argv[2])
        print(set_name, s.X.shape, {c: int((s.labels == c).sum()) for c in s.classes}, flush=True)
