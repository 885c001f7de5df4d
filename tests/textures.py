"""A small texture collection with defects planted at known places, indexed with the real default encoder.

Images are a regular texture (random phase, sensor noise); the per-pixel map tests (core and app) check that
a map finds the planted dark square and that a "this region is normal" correction clears the ring pattern.
"""

import numpy as np
from PIL import Image

from oddscope.core.project.store import Project
from oddscope.core.workflows.pipeline import IndexOptions, index_images

SIZE = 224
SQUARE = (slice(96, 124), slice(56, 84))  # rows, columns of the planted dark square
RING_CENTRE = (50, 170)  # row, column of the bright ring's centre
QUICK = IndexOptions(detectors=("knn",), make_map=False, make_clusters=False, workers=0)


def texture(rng, square=False, ring=False) -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    phase = rng.uniform(0, 2 * np.pi, 2)
    value = 128 + 50 * np.sin(xx / 4.0 + phase[0]) * np.sin(yy / 6.0 + phase[1]) + rng.normal(0, 6, (SIZE, SIZE))
    image = np.stack([value, 0.9 * value, 0.8 * value], axis=-1)
    if square:
        image[SQUARE] = 30
    if ring:  # a bright ring at the top right: the "pattern" a correction teaches is normal
        r = np.hypot(yy - RING_CENTRE[0], xx - RING_CENTRE[1])
        image[(r > 14) & (r < 22)] = 250
    return np.clip(image, 0, 255).astype(np.uint8)


def make_texture_project(root, options: IndexOptions = QUICK):
    """10 normal references; tests: 3 normal, 2 with the square, 2 with the ring pattern; project in root/project."""
    rng = np.random.default_rng(0)
    for folder in ("reference", "images"):
        (root / folder).mkdir()
    for i in range(10):
        Image.fromarray(texture(rng)).save(root / "reference" / f"ref{i}.png")
    kinds = {"normal0": {}, "normal1": {}, "normal2": {}, "square0": {"square": True}, "square1": {"square": True},
             "ring0": {"ring": True}, "ring1": {"ring": True}}
    for name, kind in kinds.items():
        Image.fromarray(texture(rng, **kind)).save(root / "images" / f"{name}.png")
    with Project.create(root / "project") as project:
        index_images(project, root / "images", root / "reference", options)
    return root


def item_ids(project, root) -> dict[str, int]:
    """Image stem -> item id."""
    return {p.stem: project.item_id(p) for p in sorted((root / "images").glob("*.png"))}
