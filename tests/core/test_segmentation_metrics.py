import math

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import roc_auc_score

from oddscope.core.models import segmentation_metrics
from oddscope.core.models.metrics import detection_metrics
from oddscope.core.models.segmentation_metrics import (
    aupro,
    image_auroc,
    pixel_auroc,
    resize_map,
    segmentation_report,
)


def _defects(rng, shapes, n_blobs=3):
    """Masks with a few blobs of different sizes each (some touching the border), and noisy maps that favour them."""
    masks = []
    for h, w in shapes:
        mask = np.zeros((h, w), bool)
        for _ in range(n_blobs):
            r, c, size = rng.integers(0, h), rng.integers(0, w), rng.integers(1, 8)
            mask[r:r + size, c:c + 2 * size] = True
        masks.append(mask)
    maps = [rng.normal(size=mask.shape) + 1.5 * mask for mask in masks]
    return maps, masks


def _sklearn_auroc(maps, masks):
    return roc_auc_score(np.concatenate([m.ravel() for m in masks]), np.concatenate([m.ravel() for m in maps]))


def _reference_aupro(maps, masks, max_fpr=0.3, n_thresholds=200):
    """The slow way, as the original MVTec AD script: binarise at many thresholds, average each region's overlap."""
    regions = [ndimage.label(mask, structure=np.ones((3, 3))) for mask in masks]
    scores = np.concatenate([m.ravel() for m in maps])
    normal = ~np.concatenate([m.ravel() for m in masks])
    fprs, pros = [0.0, 1.0], [0.0, 1.0]
    for threshold in np.linspace(scores.min(), scores.max(), n_thresholds):
        overlaps = [(m[labels == r] > threshold).mean() for m, (labels, n) in zip(maps, regions)
                    for r in range(1, n + 1)]
        fprs.append((scores[normal] > threshold).mean())
        pros.append(np.mean(overlaps))
    order = np.argsort(fprs, kind="stable")
    fprs, pros = np.asarray(fprs)[order], np.asarray(pros)[order]
    x = np.append(fprs[fprs <= max_fpr], max_fpr)
    y = np.append(pros[fprs <= max_fpr], np.interp(max_fpr, fprs, pros))
    return np.trapezoid(y, x) / max_fpr


def test_pixel_auroc_equals_sklearn_on_images_of_different_sizes_with_ties():
    rng = np.random.default_rng(0)
    maps, masks = _defects(rng, [(40, 30), (25, 50), (33, 33)])
    assert pixel_auroc(maps, masks) == pytest.approx(_sklearn_auroc(maps, masks), abs=1e-12)
    tied = [np.round(m) for m in maps]  # few distinct scores: ties count half, as in sklearn
    assert pixel_auroc(tied, masks) == pytest.approx(_sklearn_auroc(tied, masks), abs=1e-12)


def test_pixel_auroc_on_more_pixels_than_the_sample_stays_within_1e_4_of_sklearn():
    rng = np.random.default_rng(1)
    maps, masks = _defects(rng, [(256, 256)] * 5, n_blobs=20)
    assert sum((~mask).sum() for mask in masks) > 1.1 * segmentation_metrics._SAMPLE_SIZE  # normals are sampled
    maps = [np.maximum(m, 0.5).astype(np.float32) for m in maps]  # float32 with a third of the pixels tied
    assert pixel_auroc(maps, masks) == pytest.approx(_sklearn_auroc(maps, masks), abs=1e-4)


def test_aupro_agrees_with_the_slow_threshold_sweep():
    rng = np.random.default_rng(2)
    maps, masks = _defects(rng, [(48, 40), (30, 60), (40, 40)])
    maps.append(rng.normal(size=(20, 30)))  # a normal image: only normal pixels
    masks.append(np.zeros((20, 30), bool))
    for max_fpr in (0.3, 0.05, 1.0):
        assert aupro(maps, masks, max_fpr) == pytest.approx(_reference_aupro(maps, masks, max_fpr), abs=1e-2)


def test_a_perfect_map_scores_one_and_an_inverted_one_zero():
    rng = np.random.default_rng(3)
    _, masks = _defects(rng, [(30, 30)] * 4)
    masks.append(np.zeros((30, 30), bool))
    perfect = [mask.astype(float) for mask in masks]
    report = segmentation_report(perfect, masks, [m.max() for m in perfect])
    assert report["image_auroc"] == report["pixel_auroc"] == 1.0
    assert report["pro"] == pytest.approx(1.0)
    assert (report["n_images"], report["n_defective"]) == (5, 4)
    inverted = [-m for m in perfect]
    report = segmentation_report(inverted, masks, [-m.max() for m in perfect])
    assert report["image_auroc"] == report["pixel_auroc"] == report["pro"] == 0.0


def test_a_random_map_is_chance_for_auroc_and_far_below_half_for_pro():
    rng = np.random.default_rng(4)
    _, masks = _defects(rng, [(100, 100)] * 4, n_blobs=10)
    noise = [rng.random(mask.shape) for mask in masks]
    assert pixel_auroc(noise, masks) == pytest.approx(0.5, abs=0.03)
    assert aupro(noise, masks) == pytest.approx(0.15, abs=0.03)


def test_pro_weighs_a_small_region_as_much_as_a_large_one():
    mask = np.zeros((64, 64), bool)
    mask[5:25, 5:25] = True  # 400 pixels
    mask[50:53, 50:53] = True  # 9 pixels
    large, small = np.zeros((64, 64)), np.zeros((64, 64))
    large[5:25, 5:25], small[50:53, 50:53] = 1.0, 1.0
    # Each map finds one of two regions: PRO jumps to 0.5 at no false positive, then rises with the ties.
    assert aupro([large], [mask]) == pytest.approx(0.575)
    assert aupro([small], [mask]) == pytest.approx(0.575)
    assert pixel_auroc([large], [mask]) > 0.98 > 0.6 > pixel_auroc([small], [mask])


def test_pro_regions_are_8_connected():
    mask = np.zeros((10, 10), bool)
    mask[2, 2:5] = True
    mask[3, 5] = True  # touches the row only diagonally: one region of four pixels, as in MVTec AD
    found = np.zeros((10, 10))
    found[3, 5] = 1.0
    # PRO jumps to 1/4 (not 1/2 as two regions would give), then rises linearly with the tied rest.
    assert aupro([found], [mask]) == pytest.approx((0.25 + 0.25 + 0.75 * 0.3) / 2)


@pytest.mark.filterwarnings("error")  # undefined is NaN by decision, not by a division by zero
def test_images_without_defects_count_as_false_positives_and_alone_leave_metrics_undefined():
    rng = np.random.default_rng(5)
    maps, masks = _defects(rng, [(40, 40)] * 3)
    alarming = np.full((80, 80), 100.0)  # a normal image scored above every defect, larger than all others
    with_normal = (maps + [alarming], masks + [np.zeros((80, 80), bool)])
    assert aupro(*with_normal) == 0.0 < aupro(maps, masks)
    assert pixel_auroc(*with_normal) < 0.5 < pixel_auroc(maps, masks)

    normal = [np.zeros((8, 8), bool)] * 2
    report = segmentation_report([rng.random((8, 8)) for _ in normal], normal, [0.1, 0.2])
    assert report["n_defective"] == 0 and report["n_images"] == 2
    assert all(math.isnan(report[key]) for key in ("image_auroc", "pixel_auroc", "pro"))
    all_defect = ([np.ones((4, 4))], [np.ones((4, 4), bool)])  # no normal pixel: no FPR
    assert math.isnan(aupro(*all_defect)) and math.isnan(pixel_auroc(*all_defect))


def test_image_auroc_is_detection_auroc():
    scores, defective = [0.1, 0.9, 0.4, 0.35, 0.8], [False, True, False, True, True]
    assert image_auroc(scores, defective) == detection_metrics(scores, defective)["auroc"] == pytest.approx(5 / 6)


def test_resize_map_is_bilinear_on_pixel_centres():
    small = np.array([[0.0, 1.0], [0.0, 1.0]])
    big = resize_map(small, (4, 4))
    assert big.shape == (4, 4) and big.dtype == np.float32
    np.testing.assert_allclose(big[0], [0.0, 0.25, 0.75, 1.0])
    np.testing.assert_allclose(resize_map(np.ones((3, 5)), (7, 2)), 1.0)
    assert resize_map(small, (2, 2)) is small


def test_maps_smaller_than_their_masks_are_resized_in_the_report():
    rng = np.random.default_rng(6)
    _, masks = _defects(rng, [(64, 48), (32, 80)])
    coarse = [rng.random((16, 12)) + 0.5 * ndimage.zoom(mask.astype(float), (16 / mask.shape[0], 12 / mask.shape[1]))
              for mask in masks]
    resized = [resize_map(m, mask.shape) for m, mask in zip(coarse, masks)]
    expected = segmentation_report(resized, masks, [1.0, 2.0])
    assert segmentation_report(coarse, masks, [1.0, 2.0]) == pytest.approx(expected, nan_ok=True)
    assert 0.5 < expected["pixel_auroc"] < 1.0


def test_bad_input_says_what_is_wrong():
    with pytest.raises(ValueError, match="2 anomaly maps but 1 masks"):
        pixel_auroc([np.zeros((2, 2))] * 2, [np.zeros((2, 2), bool)])
    with pytest.raises(ValueError, match="anomaly map 0 has NaN"):
        aupro([np.full((2, 2), np.nan)], [np.eye(2, dtype=bool)])
    with pytest.raises(ValueError, match="max_fpr"):
        aupro([np.eye(2)], [np.eye(2, dtype=bool)], max_fpr=0.0)
