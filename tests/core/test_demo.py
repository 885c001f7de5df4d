"""Tests for the synthetic sky-survey demo set (oddscope.core.data.demo)."""

import csv
import re
from functools import lru_cache
from itertools import groupby

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage as ndi
from sklearn.metrics import roc_auc_score

from oddscope.core.data.demo import (
    ARTEFACTS,
    INTERESTING,
    NUISANCE_COLUMNS,
    NUISANCE_OUTLIER,
    DemoSet,
    make_demo,
    render_cutout,
    render_with_nuisance,
)

CATEGORIES = ("normal",) + INTERESTING + ARTEFACTS
_Y, _X = np.mgrid[0:64, 0:64]
_R = np.hypot(_Y - 31.5, _X - 31.5)  # distance from the cutout centre


@lru_cache(maxsize=None)
def _render(category, n=40, seed=0):
    """Cached: several feature tests compare against the same normals."""
    return [render_cutout(category, np.random.default_rng([seed, k])) for k in range(n)]


def _read_truth(csv_path):
    with open(csv_path, newline="") as fh:
        return list(csv.DictReader(fh))


def _image_bytes(demo: DemoSet):
    return {p.name: p.read_bytes() for p in sorted(demo.images_dir.iterdir())}


def _fraction(images, feature, threshold):
    return np.mean([feature(im) > threshold for im in images])


# --- the generated folder -------------------------------------------------------------


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path):
    a = make_demo(tmp_path / "a", n_images=60, seed=3)
    b = make_demo(tmp_path / "b", n_images=60, seed=3)
    c = make_demo(tmp_path / "c", n_images=60, seed=4)
    assert a.truth_csv.read_bytes() == b.truth_csv.read_bytes()
    assert _image_bytes(a) == _image_bytes(b)
    files_a, files_c = _image_bytes(a), _image_bytes(c)
    assert files_a.keys() == files_c.keys()
    assert all(files_a[name] != files_c[name] for name in files_a)


def test_truth_csv_lists_every_image_with_consistent_labels(tmp_path):
    demo = make_demo(tmp_path, n_images=100, seed=1, anomaly_fraction=0.12, artefact_fraction=0.16)
    rows = _read_truth(demo.truth_csv)
    assert list(rows[0]) == ["path", "is_anomaly", "category", "relevance", *NUISANCE_COLUMNS]
    assert sorted(r["path"] for r in rows) == sorted(f"images/{p.name}" for p in demo.images_dir.iterdir())
    assert all((demo.root / r["path"]).is_file() for r in rows)

    counts = {c: sum(r["category"] == c for r in rows) for c in CATEGORIES}
    assert set(r["category"] for r in rows) <= set(CATEGORIES) | {NUISANCE_OUTLIER}
    assert sum(r["category"] == NUISANCE_OUTLIER for r in rows) == demo.n_nuisance == 1  # 1% of 100, after them
    assert all(counts[c] == 4 for c in INTERESTING + ARTEFACTS)  # 12 and 16 split evenly
    assert counts["normal"] == 100 - 12 - 16
    assert (demo.n_images, demo.n_interesting, demo.n_artefacts) == (100, 12, 16)
    expected_relevance = {"normal": "1", NUISANCE_OUTLIER: "1", **{c: "5" for c in INTERESTING},
                          **{c: "0" for c in ARTEFACTS}}
    for r in rows:
        assert r["is_anomaly"] == ("0" if r["category"] in ("normal", NUISANCE_OUTLIER) else "1")
        assert r["relevance"] == expected_relevance[r["category"]]


def test_default_fractions_give_two_percent_of_each_kind(tmp_path):
    demo = make_demo(tmp_path, n_images=150, seed=2)
    rows = _read_truth(demo.truth_csv)
    assert sum(r["category"] in INTERESTING for r in rows) == demo.n_interesting == 3
    assert sum(r["category"] in ARTEFACTS for r in rows) == demo.n_artefacts == 3
    assert len({r["category"] for r in rows if r["category"] in INTERESTING}) == 3  # one of each


def test_file_names_and_order_do_not_reveal_the_category(tmp_path):
    demo = make_demo(tmp_path, n_images=120, seed=5, anomaly_fraction=0.15, artefact_fraction=0.15)
    rows = sorted(_read_truth(demo.truth_csv), key=lambda r: r["path"])
    assert all(re.fullmatch(r"images/gal_\d{5}\.png", r["path"]) for r in rows)
    assert [r["path"] for r in rows] == [f"images/gal_{i:05d}.png" for i in range(demo.n_files)]
    anomalies = [i for i, r in enumerate(rows) if r["is_anomaly"] == "1"]
    assert anomalies[-1] - anomalies[0] > 2 * len(anomalies)  # scattered, not one block
    assert len([k for k, _ in groupby(r["category"] for r in rows)]) > 30  # categories interleave
    for r in rows[:20]:
        with Image.open(demo.root / r["path"]) as im:
            assert (im.mode, im.size) == ("RGB", (64, 64))
            assert not getattr(im, "text", {})  # no metadata chunk that could carry the truth


def test_rerun_in_same_folder_replaces_the_old_images(tmp_path):
    make_demo(tmp_path, n_images=50, seed=0)
    demo = make_demo(tmp_path, n_images=20, seed=0)
    assert len(list(demo.images_dir.iterdir())) == 20
    assert len(_read_truth(demo.truth_csv)) == 20


def test_progress_is_reported_up_to_the_total(tmp_path):
    calls = []
    demo = make_demo(tmp_path, n_images=130, seed=0, progress=lambda *args: calls.append(args))
    assert calls[-1] == ("demo", 131, 131) and demo.n_files == 131
    assert len(calls) >= 2
    done = [d for _, d, _ in calls]
    assert done == sorted(done)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(n_images=0),
        dict(anomaly_fraction=-0.1),
        dict(artefact_fraction=1.5),
        dict(anomaly_fraction=0.6, artefact_fraction=0.6),
        dict(nuisance_fraction=-0.5),
    ],
)
def test_invalid_arguments_raise(tmp_path, kwargs):
    with pytest.raises(ValueError):
        make_demo(tmp_path, **{"n_images": 10, **kwargs})


def test_nuisance_outliers_come_after_an_unchanged_survey_with_their_values_in_the_manifest(tmp_path):
    plain = make_demo(tmp_path / "plain", n_images=60, seed=3, nuisance_fraction=0.0)
    demo = make_demo(tmp_path / "nuisance", n_images=60, seed=3, nuisance_fraction=0.05)
    assert (plain.n_files, demo.n_files, demo.n_nuisance) == (60, 63, 3)
    survey = _image_bytes(plain)
    assert {name: data for name, data in _image_bytes(demo).items() if name in survey} == survey
    rows = _read_truth(demo.truth_csv)
    assert [r["category"] for r in rows[60:]] == [NUISANCE_OUTLIER] * 3
    assert rows[:60] == _read_truth(plain.truth_csv)
    with open(demo.manifest_csv, newline="") as fh:
        manifest = list(csv.DictReader(fh))
    assert list(manifest[0]) == ["path", *NUISANCE_COLUMNS]
    assert [m["path"] for m in manifest] == [r["path"] for r in rows]
    assert {m["sky_tint"] for m in manifest[:60]} == {"none"} and {m["sky_tint"] for m in manifest[60:]} == {"blue"}


def test_a_nuisance_outlier_is_a_normal_galaxy_under_a_bluer_sky():
    normal, values = render_with_nuisance("normal", np.random.default_rng(7))
    tinted, tinted_values = render_with_nuisance(NUISANCE_OUTLIER, np.random.default_rng(7))
    np.testing.assert_array_equal(normal, render_cutout("normal", np.random.default_rng(7)))
    assert values == {**tinted_values, "sky_tint": "none"} and tinted_values["sky_tint"] == "blue"
    corner = (slice(0, 8), slice(0, 8))  # sky only
    assert tinted[corner][..., 2].mean() > normal[corner][..., 2].mean() + 20


# --- single cutouts ----------------------------------------------------------------


@pytest.mark.parametrize("category", CATEGORIES)
def test_each_category_renders_an_rgb_uint8_cutout(category):
    image = render_cutout(category, np.random.default_rng(0))
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert image.std() > 2  # an object on a noisy sky, not a blank frame
    assert not np.array_equal(image[..., 0], image[..., 2])  # bands differ in colour
    assert render_cutout(category, np.random.default_rng(0), size=96).shape == (96, 96, 3)


def test_unknown_category_and_tiny_size_raise():
    with pytest.raises(ValueError):
        render_cutout("quasar", np.random.default_rng(0))
    with pytest.raises(ValueError):
        render_cutout("normal", np.random.default_rng(0), size=8)


def _outer_to_inner_flux(image):
    flux = image.astype(float).sum(axis=2)
    flux = np.maximum(flux - np.median(flux), 0)
    return flux[(_R > 6) & (_R < 18)].mean() / (flux[_R < 3].mean() + 1e-9)


def _outer_colour_vs_centre(image):
    """Blue/red flux ratio in an annulus divided by the same ratio at the centre."""
    flux = image.astype(float) - np.median(image.reshape(-1, 3), axis=0)
    annulus, centre = (_R > 7) & (_R < 18), _R < 3

    def blue_over_red(mask):
        return flux[..., 2][mask].sum() / max(flux[..., 0][mask].sum(), 1.0)

    return blue_over_red(annulus) / blue_over_red(centre)


def _bright_peaks(image):
    smooth = ndi.gaussian_filter(image.astype(float).sum(axis=2), 1.5)
    smooth -= np.median(smooth)
    return int(((smooth == ndi.maximum_filter(smooth, 5)) & (smooth > 0.5 * smooth.max())).sum())


def test_ring_puts_more_flux_away_from_the_centre_than_normals():
    normal = np.median([_outer_to_inner_flux(im) for im in _render("normal")])
    ring = np.median([_outer_to_inner_flux(im) for im in _render("ring")])
    assert ring > 2 * normal


def test_arc_adds_blue_light_around_a_red_lens():
    normal = np.median([_outer_colour_vs_centre(im) for im in _render("normal")])
    arc = np.median([_outer_colour_vs_centre(im) for im in _render("arc")])
    assert arc > normal + 0.25


def test_merger_shows_two_nuclei():
    assert _fraction(_render("merger"), _bright_peaks, 1) >= 0.8
    assert _fraction(_render("normal"), _bright_peaks, 1) <= 0.4


def _longest_dead_run(image):
    dead = (image == 0).all(axis=2)
    runs = [sum(1 for _ in run) for col in dead.T for is_dead, run in groupby(col) if is_dead]
    return max(runs, default=0)


def _isolated_saturated(image):
    pixels = image.astype(int)
    neighbours = np.maximum.reduce([np.roll(pixels, s, axis) for s in (1, -1) for axis in (0, 1)])
    return int(((pixels == 255) & (neighbours < 200)).any(axis=2).sum())


def _saturated(image):
    return int((image == 255).all(axis=2).sum())


def _bright_far_from_centre(image):
    return int((image.max(axis=2)[_R > 22] > 90).sum())


@pytest.mark.parametrize(
    "category, feature, threshold",
    [
        ("dead_column", _longest_dead_run, 16),
        ("hot_pixels", _isolated_saturated, 4),
        ("star", _saturated, 8),
        ("trail", _bright_far_from_centre, 20),
    ],
)
def test_artefacts_leave_their_signature_and_normals_do_not(category, feature, threshold):
    assert _fraction(_render(category), feature, threshold) >= 0.95
    assert _fraction(_render("normal"), feature, threshold) <= 0.05


def test_mean_brightness_alone_does_not_separate_anomalies():
    """The nuisance (brightness, sky, noise) must dominate plain pixel statistics."""
    images = _render("normal", n=200, seed=7)
    for category in INTERESTING + ARTEFACTS:
        images += _render(category, n=15, seed=8)
    labels = np.r_[np.zeros(200), np.ones(len(images) - 200)]
    auroc = roc_auc_score(labels, [im.mean() for im in images])
    assert max(auroc, 1 - auroc) < 0.8
