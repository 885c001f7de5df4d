"""Per-pixel maps out of the project: heat-map and mask PNGs per image, and a table of what they show.

Every heat map uses the same fixed colour scale in calibrated units (0 to
``SCALE_MAX``), so a colour means the same rate on normal pixels in every file,
and masks are thresholded in the same units (see
:mod:`oddscope.core.models.patches.calibration`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from oddscope.core.data.images import load_array
from oddscope.core.models.patches import Calibration
from oddscope.core.models.segmentation_metrics import resize_map
from oddscope.core.project.store import Project
from oddscope.core.workflows.segmentation import PixelMaps

DEFAULT_THRESHOLD = 3.0  # one normal pixel in a thousand is as anomalous
SCALE_MAX = 6.0  # the top of the colour scale: one normal pixel in a million
# "inferno"-like anchors (black -> purple -> orange -> pale yellow), interpolated to 256 colours.
_ANCHORS = np.array([[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66],
                     [245, 125, 21], [250, 193, 39], [252, 255, 164]], dtype=np.float64)
HEAT_COLOURS = np.stack([np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(_ANCHORS)), _ANCHORS[:, c])
                         for c in range(3)], axis=1).astype(np.uint8)


def heat_rgb(values: np.ndarray) -> np.ndarray:
    """Calibrated values -> RGB uint8 on the fixed scale 0..SCALE_MAX."""
    index = np.clip(np.asarray(values, np.float32) / SCALE_MAX * 255.0, 0, 255).astype(np.uint8)
    return HEAT_COLOURS[index]


def export_maps(project: Project, out, threshold: float = DEFAULT_THRESHOLD, progress=None) -> pd.DataFrame:
    """Write ``<name>.map.png`` and ``<name>.mask.png`` (image size) per item and ``maps.csv``; returns the table.

    Defects the user painted in the app are copied to ``defects/<name>.png``:
    ground truth that ``oddscope evaluate segmentation --masks OUT/defects`` reads.

    Computes the maps that are missing (with progress); ``<name>`` is the
    image's file stem, with its item id appended where two images share one.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pixel_maps = PixelMaps(project)
    pixel_maps.compute(progress=progress)
    items = project.items(with_meta=False)
    ids = project.ids_with_status("ok", "test")
    stems = pd.Series([Path(p).stem for p in items.loc[ids, "path"]], index=ids)
    duplicated = stems.duplicated(keep=False)
    scores = pixel_maps.scores()
    rows = []
    for item_id in ids:
        name = f"{stems[item_id]}_{item_id}" if duplicated[item_id] else stems[item_id]
        painted = project.layout.defect_mask(item_id)
        if painted.exists():  # the user's mask label, named as its image: `evaluate segmentation --masks OUT/defects`
            (out / "defects").mkdir(exist_ok=True)
            shutil.copyfile(painted, out / "defects" / f"{name}.png")
        values = pixel_maps.map(int(item_id))
        if values is None:
            continue
        path = project.resolve(items.at[item_id, "path"])
        full = resize_map(values, load_array(path).shape[:2])  # decoded as the maps were: FITS and URLs too
        Image.fromarray(heat_rgb(full)).save(out / f"{name}.map.png")
        mask = full >= threshold
        Image.fromarray(mask.astype(np.uint8) * 255).save(out / f"{name}.mask.png")
        rows.append({"path": str(path), "name": name, "map_score": float(scores[item_id]),
                     "area_above_threshold": float(mask.mean()), "painted_defect": painted.exists()})
    table = pd.DataFrame(rows, columns=["path", "name", "map_score", "area_above_threshold", "painted_defect"])
    table.to_csv(out / "maps.csv", index=False)
    return table


def threshold_meaning(threshold: float) -> str:
    """What a threshold in calibrated units means, in words."""
    rate = Calibration.false_positive_rate(threshold)
    return f"{threshold:g} (about 1 normal pixel in {1 / rate:,.0f} reaches it)"
