"""Ground-truth defect masks: which mask file belongs to which image, and its pixels as booleans.

Datasets name masks in a few ways, so matching accepts each: the image's stem
itself, ``<stem>_mask`` (MVTec AD) or ``<stem>_gt``, with any image extension,
either flat in the mask folder or in subfolders that mirror the tail of the
image's folder (MVTec's ``ground_truth/<defect>/000_mask.png`` for
``test/<defect>/000.png``).  A mask in a subfolder never matches an image in
another folder, so ``000`` of one defect type is not taken for ``000`` of
another, nor for a normal image.  An image without a mask is normal.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from oddscope.core.data.images import (
    FITS_EXTENSIONS,
    IMAGE_EXTENSIONS,
    ImageReadError,
    is_image_path,
    load_array,
)

# Name conventions, the preferred first when one folder holds several candidates for an image.
MASK_SUFFIXES = ("_mask", "_gt", "")


class MaskMatches(dict):
    """``{image path: mask Path or None}``, with how many images each convention matched.

    ``conventions`` counts matches by a label such as ``"<stem>_mask in mirrored subfolders"``;
    ``unused`` lists mask files that matched no image (often a sign of a different layout).
    """

    def __init__(self, matches: dict, conventions: Counter, unused: list[Path]):
        super().__init__(matches)
        self.conventions, self.unused = conventions, unused

    def summary(self) -> str:
        """One line for the user: how many images got a mask, by which convention, and what was left over."""
        found = sum(mask is not None for mask in self.values())
        ways = ", ".join(f"{n} by {label}" for label, n in self.conventions.most_common())
        text = f"masks for {found} of {len(self)} images" + (f" ({ways})" if ways else "")
        text += f"; {len(self) - found} without a mask (normal)"
        return text + (f"; {len(self.unused)} mask files matched no image" if self.unused else "")


def find_masks(mask_dir, image_paths) -> MaskMatches:
    """The mask file of each image (``None``: normal), keyed by the paths as given.

    Among a stem's candidates, the mask whose subfolder mirrors the most of the
    image's folder wins, then the convention listed first in
    :data:`MASK_SUFFIXES`.  Files that are themselves in ``image_paths`` are never masks.
    """
    root = Path(mask_dir)
    if not root.is_dir():
        raise ValueError(f"mask folder {str(root)!r} does not exist or is not a folder")
    images = list(image_paths)
    own = {os.path.abspath(p) for p in images}
    by_name = defaultdict(list)  # file stem -> [(subfolder parts, path)]
    for folder, _, files in os.walk(root):
        parts = Path(folder).relative_to(root).parts
        for name in files:
            path = Path(folder) / name
            if is_image_path(name) and os.path.abspath(path) not in own:
                by_name[_stem(name)].append((parts, path))
    matches, conventions, used = {}, Counter(), set()
    for image in images:
        folders = Path(os.path.abspath(image)).parent.parts
        candidates = [(-len(parts), rank, path)  # deepest mirror first, then the preferred convention
                      for rank, suffix in enumerate(MASK_SUFFIXES)
                      for parts, path in by_name.get(_stem(Path(image).name) + suffix, ())
                      if len(parts) <= len(folders) and folders[len(folders) - len(parts):] == parts]
        matches[image] = None
        if candidates:
            depth, rank, path = min(candidates)
            matches[image] = path
            used.add(path)
            where = "mirrored subfolders" if depth else "the mask folder"
            conventions[f"<stem>{MASK_SUFFIXES[rank]} in {where}"] += 1
    unused = sorted({path for candidates in by_name.values() for _, path in candidates} - used)
    return MaskMatches(matches, conventions, unused)


def load_mask(path, shape=None) -> np.ndarray:
    """The mask as a bool (H, W) array: any non-zero pixel (in any channel) is defect.

    Greyscale, RGB, 16-bit and palette images all work (a palette's colours
    count, so black is normal).  ``shape`` (H, W) resizes it by nearest
    neighbour, which keeps it binary.  An unreadable file raises ``ValueError``
    naming the file and the reason.
    """
    try:
        pixels = load_array(path)
    except ImageReadError as err:
        raise ValueError(f"cannot read mask {str(path)!r}: {err}") from None
    mask = pixels.any(axis=-1) if pixels.ndim == 3 else pixels != 0
    if shape is not None and mask.shape != tuple(shape):
        resized = Image.fromarray(mask).resize((int(shape[1]), int(shape[0])), Image.Resampling.NEAREST)
        mask = np.asarray(resized, dtype=bool)
    return mask


def _stem(name: str) -> str:
    """The name without its image extension (both parts of ``.fits.gz``)."""
    lower = name.lower()
    ext = next((e for e in FITS_EXTENSIONS + IMAGE_EXTENSIONS if lower.endswith(e)), Path(name).suffix)
    return name[: len(name) - len(ext)]
