"""How well per-pixel anomaly maps outline the defects: the MVTec AD metrics.

Image AUROC asks whether the defective images rank first; pixel AUROC whether
defect pixels outscore normal ones (dominated by large defects, since every
pixel counts once); AUPRO whether every defect is found, however small: each
connected ground-truth region weighs the same, and only the low false-positive
range that an inspector would accept counts.

Memory: the evaluation may hold 10^8-10^9 pixels (maps are compared at the
images' full size), so no function here concatenates or sorts all pixels.
Scores are binned on one threshold axis instead, in two passes over the
images: the axis is the distinct values of a random sample of ``_SAMPLE_SIZE``
normal and as many defect pixel scores (all of them when they are fewer), and
bin k holds the scores in (axis[k - 1], axis[k]].  Pixels of one bin count as
tied (half credit, as sklearn gives true ties), which moves AUROC or AUPRO by
at most about the share of either class strictly between two neighbouring
sampled values: a few times 1 / ``_SAMPLE_SIZE``, however rare the defects.
With fewer pixels than the sample size each distinct score has its own bin
and the results equal those of a sort of all pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from oddscope.core.models.metrics import detection_metrics

_SAMPLE_SIZE = 1 << 18
# 8-connectivity, as in the MVTec AD evaluation code: diagonal neighbours belong to one defect.
_EIGHT_CONNECTED = np.ones((3, 3), dtype=int)


def resize_map(anomaly_map, shape) -> np.ndarray:
    """The map bilinearly resized to ``shape`` (H, W), float32; unchanged when it already has that shape.

    Maps cover the whole image at the encoder's resolution; the metrics compare
    them with masks at the image's size.  Pillow aligns pixel centres (as
    torch's ``interpolate(align_corners=False)`` that PatchCore-style methods
    use) and averages when shrinking.
    """
    arr = np.asarray(anomaly_map)
    if arr.shape == tuple(shape):
        return arr
    if arr.ndim != 2:
        raise ValueError(f"an anomaly map must be 2-D (H, W), got shape {arr.shape}")
    image = Image.fromarray(np.ascontiguousarray(arr, dtype=np.float32))
    return np.asarray(image.resize((int(shape[1]), int(shape[0])), Image.Resampling.BILINEAR))


def pixel_auroc(maps, masks) -> float:
    """ROC AUC over all pixels of all images (defect pixels against normal ones); NaN without both.

    ``maps``: float (H, W) arrays, higher = more anomalous; ``masks``: bool
    (H, W) arrays; images may differ in size, and a map whose shape differs
    from its mask's is resized to it (:func:`resize_map`).  ``maps`` is read
    twice: a sequence that loads each map on access holds one image at a time
    (an iterator is listed first).
    """
    return _histograms(maps, masks).auroc()


def aupro(maps, masks, max_fpr: float = 0.3) -> float:
    """Area under the per-region-overlap curve up to ``max_fpr``, divided by ``max_fpr``.

    At each threshold, PRO is the mean over all connected defect regions (of all
    images) of the fraction of the region above the threshold; the curve plots
    it against the fraction of normal pixels above the threshold.  A perfect
    map gives 1.0, a random one about ``max_fpr / 2``.  NaN without defects or
    without normal pixels.  Inputs as for :func:`pixel_auroc`.
    """
    return _histograms(maps, masks).aupro(max_fpr)


def image_auroc(scores, is_defective) -> float:
    """ROC AUC of one score per image against whether its mask has any defect (NaN without both kinds)."""
    return detection_metrics(scores, is_defective, ks=())["auroc"]


def segmentation_report(maps, masks, image_scores, max_fpr: float = 0.3) -> dict:
    """``{image_auroc, pixel_auroc, pro, n_images, n_defective}``, the MVTec AD table row for one set of maps.

    ``image_scores`` is one score per image (e.g. the maximum of its map); an
    image is defective when its mask has a defect pixel.  Undefined metrics are
    NaN, so a table with an all-normal set still renders.
    """
    hist = _histograms(maps, masks)
    return {
        "image_auroc": image_auroc(image_scores, hist.defective),
        "pixel_auroc": hist.auroc(),
        "pro": hist.aupro(max_fpr),
        "n_images": len(hist.defective),
        "n_defective": int(np.sum(hist.defective)),
    }


@dataclass
class _Histograms:
    """Per score bin (lowest score first): normal pixels, defect pixels, and defect pixels weighted 1/region area."""

    normal: np.ndarray
    defect: np.ndarray
    region: np.ndarray
    n_regions: int
    defective: list[bool]

    def auroc(self) -> float:
        if not (self.normal.sum() and self.defect.sum()):
            return math.nan
        fpr, tpr = self._curve(self.defect, self.defect.sum())
        return float(np.trapezoid(tpr, fpr))

    def aupro(self, max_fpr: float) -> float:
        if not 0 < max_fpr <= 1:
            raise ValueError(f"max_fpr must be in (0, 1], got {max_fpr}")
        if not (self.normal.sum() and self.n_regions):
            return math.nan
        fpr, pro = self._curve(self.region, self.n_regions)
        end = int(np.searchsorted(fpr, max_fpr, side="right"))  # fpr[end - 1] <= max_fpr < fpr[end]
        x, y = fpr[:end], pro[:end]
        if end < fpr.size:
            step = (max_fpr - fpr[end - 1]) / (fpr[end] - fpr[end - 1])
            x, y = np.append(x, max_fpr), np.append(y, pro[end - 1] + step * (pro[end] - pro[end - 1]))
        return float(np.trapezoid(y, x) / max_fpr)

    def _curve(self, positive: np.ndarray, total) -> tuple[np.ndarray, np.ndarray]:
        """(false-positive rate, positive rate) as the threshold falls from above every score to below it."""
        fpr = np.concatenate([[0.0], np.cumsum(self.normal[::-1]) / self.normal.sum()])
        return fpr, np.concatenate([[0.0], np.cumsum(positive[::-1]) / total])


def _histograms(maps, masks) -> _Histograms:
    """Bin every pixel of every image on one threshold axis (see the module docstring); two passes over ``maps``."""
    maps = list(maps) if iter(maps) is maps else maps
    masks = [_as_mask(mask) for mask in masks]
    if len(maps) != len(masks):
        raise ValueError(f"{len(maps)} anomaly maps but {len(masks)} masks")
    axis = _threshold_axis(maps, masks)
    n_bins = axis.size + 1
    hist = _Histograms(np.zeros(n_bins), np.zeros(n_bins), np.zeros(n_bins), 0, [])
    for i, mask in enumerate(masks):
        bins = np.searchsorted(axis, _scores(maps[i], mask, i).ravel())  # bin k: scores in (axis[k-1], axis[k]]
        defect_bins = bins[mask.ravel()]
        hist.normal += np.bincount(bins[~mask.ravel()], minlength=n_bins)
        hist.defect += np.bincount(defect_bins, minlength=n_bins)
        regions, n_regions = ndimage.label(mask, structure=_EIGHT_CONNECTED)
        if n_regions:
            in_region = regions[mask]
            area = np.bincount(in_region)
            hist.region += np.bincount(defect_bins, weights=1.0 / area[in_region], minlength=n_bins)
        hist.n_regions += n_regions
        hist.defective.append(bool(n_regions))
    return hist


def _threshold_axis(maps, masks) -> np.ndarray:
    """Sorted distinct scores of a random sample of the normal pixels and one of the defect pixels."""
    n_defect = sum(int(mask.sum()) for mask in masks)
    n_normal = sum(mask.size for mask in masks) - n_defect
    rng = np.random.default_rng(0)
    sample = []
    for i, mask in enumerate(masks):
        scores = _scores(maps[i], mask, i)
        for pixels, total in ((scores[mask], n_defect), (scores[~mask], n_normal)):
            if total > _SAMPLE_SIZE:
                pixels = pixels[rng.integers(0, pixels.size, math.ceil(pixels.size * _SAMPLE_SIZE / total))]
            sample.append(pixels)
    return np.unique(np.concatenate(sample)) if sample else np.zeros(0)


def _scores(anomaly_map, mask: np.ndarray, i: int) -> np.ndarray:
    scores = resize_map(anomaly_map, mask.shape)
    if np.isnan(scores).any():
        raise ValueError(f"anomaly map {i} has NaN scores")
    return scores


def _as_mask(mask) -> np.ndarray:
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"a mask must be 2-D (H, W), got shape {mask.shape}")
    return mask
