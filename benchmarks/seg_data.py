"""Masked image sets for the segmentation benchmarks, split as "good images as reference".

    from seg_data import mpdd_split; reference, test, masks = mpdd_split("/work/data/mpdd_metal_plate")

Every split returns ``(reference_paths, test_paths, mask_paths)``: the known-normal images a
memory bank is built from, the images to score, and for each test image the path of its defect
mask (pixels > 0 are defective) or ``None`` for a normal image.  An image is defective exactly
when it has a mask, so one list gives both the image labels and the pixel truth.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from oddscope.core.data.images import is_image_path
from oddscope.core.data.masks import load_mask as read_mask


def mpdd_split(root, seed: int = 0) -> tuple[list[str], list[str], list[str | None]]:
    """MPDD (``labels.csv``: path,label,mask; label good/defect): half the good images as reference.

    The other half of the good images and all defective ones form the test set, in the
    order of ``labels.csv``; the seeded permutation only decides which good images are
    reference, so a seed reproduces the split.  Paths are absolute.
    """
    root = Path(root)
    with open(root / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    good = [i for i, row in enumerate(rows) if row["label"] == "good"]
    chosen = np.random.default_rng(seed).permutation(len(good))[: len(good) // 2]
    reference_rows = {good[i] for i in chosen}
    reference = [str(root / rows[i]["path"]) for i in sorted(reference_rows)]
    test, masks = [], []
    for i, row in enumerate(rows):
        if i in reference_rows:
            continue
        test.append(str(root / row["path"]))
        masks.append(str(root / row["mask"]) if row["label"] == "defect" else None)
    return reference, test, masks


def folder_split(root) -> tuple[list[str], list[str], list[str | None]]:
    """A set laid out as ``reference/`` (normal), ``images/`` (test) and ``masks/`` (defective only).

    A test image's mask is the file in ``masks/`` with the same stem; images without
    one are normal.  Files are taken in sorted name order.
    """
    root = Path(root)
    reference = _images_in(root / "reference")
    test = _images_in(root / "images")
    masks_by_stem = {Path(p).stem: p for p in _images_in(root / "masks")} if (root / "masks").is_dir() else {}
    masks = [masks_by_stem.pop(Path(p).stem, None) for p in test]
    if masks_by_stem:
        raise ValueError(f"{root / 'masks'}: masks without a test image: {sorted(masks_by_stem)[:5]}")
    return reference, test, masks


def load_mask(path: str | None, shape: tuple[int, int]) -> np.ndarray:
    """Boolean (H, W) defect mask (``oddscope.core.data.masks``); all False for a normal image (``path`` None)."""
    return np.zeros(shape, dtype=bool) if path is None else read_mask(path, shape)


def _images_in(folder: Path) -> list[str]:
    if not folder.is_dir():
        raise FileNotFoundError(f"no folder {folder}")
    paths = sorted(str(p) for p in folder.iterdir() if p.is_file() and is_image_path(p))
    if not paths:
        raise ValueError(f"no images in {folder}")
    return paths


def elpv_split(root, n_cells: int = 800, seed: int = 0) -> tuple[list[str], list[str], list[bool]]:
    """ELPV solar cells (``elpv_dataset/data/labels.csv``: path, defect probability, mono/poly), image level only.

    A seeded sample of ``n_cells`` cells; half of its defect-free cells (probability 0) are the reference,
    the rest are the test set, where a cell is defective when its probability is at least 0.5.
    Returns ``(reference, test, is_defective)``.
    """
    data = Path(root) / "elpv_dataset" / "data"
    rows = [line.split() for line in (data / "labels.csv").read_text().splitlines() if line.strip()]
    rng = np.random.default_rng(seed)
    rows = [rows[i] for i in sorted(rng.choice(len(rows), min(n_cells, len(rows)), replace=False))]
    normal = [i for i, row in enumerate(rows) if float(row[1]) == 0.0]
    reference_rows = {normal[i] for i in rng.permutation(len(normal))[: len(normal) // 2]}
    reference = [str(data / rows[i][0]) for i in sorted(reference_rows)]
    test = [(str(data / row[0]), float(row[1]) >= 0.5) for i, row in enumerate(rows) if i not in reference_rows]
    return reference, [p for p, _ in test], [d for _, d in test]

