"""``oddscope evaluate segmentation``: the project's per-pixel maps against ground-truth masks.

Masks are matched to images by file stem (:func:`oddscope.core.data.masks.find_masks`);
an image without a mask, or with an empty one, is normal.  Maps and masks are
compared at the image's size, scaled down to at most ``max_side`` pixels on
the long side (as anomalib evaluates at 256 px), which bounds time and memory
without changing the ranking of a smooth map.
"""

from __future__ import annotations

import time

import numpy as np
from PIL import Image

from oddscope.core.data.masks import find_masks, load_mask
from oddscope.core.models.segmentation_metrics import resize_map, segmentation_report
from oddscope.core.progress import as_progress
from oddscope.core.project.store import Project
from oddscope.core.workflows.segmentation import PixelMaps

EVAL_MAX_SIDE = 256


def evaluate_segmentation(project: Project, masks_dir, max_side: int = EVAL_MAX_SIDE, progress=None) -> dict:
    """``{"image_auroc", "pixel_auroc", "pro", "n_images", "n_defective", "mode", ...}`` over the test images.

    Computes the maps that are missing first (with progress); ``map_ms_per_image`` is their cost in this run.
    """
    progress = as_progress(progress)
    pixel_maps = PixelMaps(project)
    ids = project.ids_with_status("ok", "test")
    if not len(ids):
        raise ValueError(f"{project.root} has no readable test images to evaluate")
    paths = project.resolve_all(project.items(with_meta=False).loc[ids, "path"])
    matches = find_masks(masks_dir, paths)
    if all(mask is None for mask in matches.values()):
        raise ValueError(f"no mask in {masks_dir} matches an image of the project ({matches.summary()}); masks are "
                         "matched by file stem: <stem>.png, <stem>_mask.png or <stem>_gt.png, in the folder or in "
                         "subfolders mirroring the images'")
    start = time.perf_counter()
    computed = pixel_maps.compute(ids, progress=progress)
    seconds = time.perf_counter() - start
    scores = pixel_maps.scores()[ids]
    maps, masks = [], []
    for n, (item_id, path) in enumerate(zip(ids, paths)):
        with Image.open(path) as image:
            width, height = image.size
        scale = min(1.0, max_side / max(width, height))
        shape = (max(1, round(height * scale)), max(1, round(width * scale)))
        mask_path = matches[path]
        masks.append(load_mask(mask_path, shape) if mask_path is not None else np.zeros(shape, bool))
        maps.append(resize_map(pixel_maps.map(int(item_id)), shape))
        progress.update("masks", n + 1, len(ids))
    report = segmentation_report(maps, masks, scores)
    report.update({"mode": pixel_maps.scorer.mode, "masks": matches.summary(), "eval_max_side": max_side,
                   "maps_computed": int(len(computed)),
                   "map_ms_per_image": round(1000 * seconds / len(computed), 1) if len(computed) else None})
    return report
