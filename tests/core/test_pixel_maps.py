"""Per-pixel anomaly maps: the defect is where the map says, calibration means what it says, corrections teach.

Images are the texture collection of :mod:`textures` (defects planted at known
places); features come from the real default encoder.
"""

import numpy as np
import pytest
from PIL import Image
from textures import SIZE, SQUARE, item_ids

from oddscope.core.models.patches import Calibration, PatchScorer
from oddscope.core.models.patches.bank import greedy_coreset, nearest_distances
from oddscope.core.models.segmentation_metrics import resize_map
from oddscope.core.progress import Cancelled, Progress
from oddscope.core.project.layout import PIXEL_MAP_SCORE
from oddscope.core.project.store import Project
from oddscope.core.workflows.segmentation import PixelMaps


def in_cells(index, map_size, rows, cols, margin=2):
    """Whether map cell ``index`` lies over the pixel rectangle rows x cols (within ``margin`` cells)."""
    scale = map_size / SIZE
    r, c = index
    return (rows.start * scale - margin <= r <= rows.stop * scale + margin
            and cols.start * scale - margin <= c <= cols.stop * scale + margin)


@pytest.fixture(scope="module")
def texture_project(texture_dir, tmp_path_factory):
    """This module's copy of the texture collection (the first test computes its maps)."""
    import shutil

    return shutil.copytree(texture_dir, tmp_path_factory.mktemp("texture") / "copy")


def test_the_map_peaks_inside_a_planted_defect_and_scores_it_above_normal_images(texture_project):
    with Project.open(texture_project / "project", writable=True) as project:
        maps = PixelMaps(project)
        ids = item_ids(project, texture_project)
        maps.compute()
        scores = maps.scores()
        for name in ("square0", "square1"):
            values = maps.map(ids[name])
            peak = np.unravel_index(np.argmax(values), values.shape)
            assert in_cells(peak, values.shape[0], *SQUARE), (name, peak)
        normal = max(scores[ids[f"normal{i}"]] for i in range(3))
        assert min(scores[ids["square0"]], scores[ids["square1"]]) > normal + 3
        assert maps.scorer.mode == "reference"


def test_a_this_is_normal_correction_clears_the_same_pattern_on_another_image(texture_project, tmp_path):
    import shutil

    shutil.copytree(texture_project, tmp_path / "copy")
    with Project.open(tmp_path / "copy" / "project", writable=True) as project:
        maps = PixelMaps(project)
        ids = item_ids(project, tmp_path / "copy")
        maps.compute()
        before = maps.scores()
        normal = max(before[ids[f"normal{i}"]] for i in range(3))
        assert before[ids["ring1"]] > normal + 10, "the unseen ring pattern should alarm before the correction"
        region = resize_map(maps.map(ids["ring0"]), (SIZE, SIZE)) > 1.0  # the user paints over the alarm
        assert not region[SQUARE].any() and maps.mark_normal(ids["ring0"], region) > 0
        assert np.isnan(maps.scores()).all(), "a correction marks every map stale"
        maps.compute()
        after = maps.scores()
        assert after[ids["ring1"]] < normal + 1.0, "the same pattern on another image is normal now"
        assert after[ids["square0"]] > normal + 3, "the correction must not clear other defects"
        assert maps.undo_normal() > 0 and np.isnan(maps.scores()).all(), "an undo marks every map stale"
        assert PixelMaps(project).scorer.correction_sizes.size == 0, "the undo is saved with the model"
        maps.compute([ids["ring1"]])
        assert maps.scores()[ids["ring1"]] > normal + 10, "undone: the pattern alarms again"
        assert maps.undo_normal() == 0


def test_zero_shot_finds_the_defect_among_the_collection_without_references(texture_project, tmp_path):
    import shutil

    shutil.copytree(texture_project, tmp_path / "copy")
    with Project.open(tmp_path / "copy" / "project", writable=True) as project:
        maps = PixelMaps(project)
        maps.fit("zero-shot")
        maps.compute()
        ids = item_ids(project, tmp_path / "copy")
        scores = maps.scores()
        values = maps.map(ids["square0"])
        assert in_cells(np.unravel_index(np.argmax(values), values.shape), values.shape[0], *SQUARE)
        assert min(scores[ids["square0"]], scores[ids["square1"]]) > max(scores[ids[f"normal{i}"]] for i in range(3))


def test_maps_are_cached_and_a_cancelled_run_resumes_with_the_rest(texture_project, tmp_path):
    import shutil

    shutil.copytree(texture_project, tmp_path / "copy")
    with Project.open(tmp_path / "copy" / "project", writable=True) as project:
        maps = PixelMaps(project)
        maps.fit()
        progress = Progress(lambda stage, done, total: progress.cancel() if stage == "maps" and done else None)
        with pytest.raises(Cancelled):
            maps.compute(batch_size=2, progress=progress)
        finished = np.isfinite(maps.scores()).sum()
        assert finished == 2
        rest = maps.compute(batch_size=2)
        assert len(rest) == 7 - finished and np.isfinite(project.load_array(PIXEL_MAP_SCORE)).sum() == 7
        assert len(PixelMaps(project).compute()) == 0, "a reopened project keeps its maps"


def test_calibrated_units_are_false_positive_rates_on_normal_values():
    rng = np.random.default_rng(1)
    calibration = Calibration.fit(rng.gamma(2.0, 1.0, 200_000))
    fresh = calibration(rng.gamma(2.0, 1.0, 400_000))
    for units in (1.0, 2.0, 3.0):
        rate = (fresh >= units).mean()
        assert 0.7 * 10**-units < rate < 1.3 * 10**-units, (units, rate)
    assert calibration(np.array([0.0]))[0] == 0
    far = calibration(np.array([30.0, 60.0]))
    assert 6 < far[0] < far[1], "values beyond every normal one keep growing"
    assert Calibration.from_dict(calibration.to_dict())(np.array([5.0])) == calibration(np.array([5.0]))


def test_the_greedy_coreset_covers_the_patches_better_than_a_random_subset():
    rng = np.random.default_rng(2)
    centres = rng.normal(size=(40, 16)) * 10
    patches = (centres[rng.integers(0, 40, 5000)] + rng.normal(size=(5000, 16))).astype(np.float32)
    patches[:5] += 60  # a few far outliers a random subset misses
    chosen = greedy_coreset(patches, 200, seed=0)
    random = rng.choice(len(patches), 200, replace=False)
    worst_greedy = nearest_distances(patches, patches[chosen]).max()
    worst_random = nearest_distances(patches, patches[random]).max()
    assert len(set(chosen)) == 200 and worst_greedy < 0.5 * worst_random


def test_nearest_distances_are_exact():
    rng = np.random.default_rng(3)
    queries, bank = rng.normal(size=(300, 8)), rng.normal(size=(2000, 8))
    brute = np.sqrt(((queries[:, None] - bank[None]) ** 2).sum(-1)).min(1)
    np.testing.assert_allclose(nearest_distances(queries, bank), brute, rtol=1e-4, atol=1e-4)


def test_a_reference_mode_scorer_needs_two_normal_images():
    with pytest.raises(ValueError, match="at least 2 normal images"):
        PatchScorer("reference", SIZE).fit_reference(np.zeros((1, 4, 4, 8), np.float32))


def test_cli_evaluates_maps_against_masks_and_exports_them(texture_project, tmp_path):
    import json
    import shutil

    from click.testing import CliRunner

    from oddscope.core.cli import main

    shutil.copytree(texture_project, tmp_path / "copy")
    project = tmp_path / "copy" / "project"
    masks = tmp_path / "masks"
    masks.mkdir()
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    ring = (np.hypot(yy - 50, xx - 170) > 14) & (np.hypot(yy - 50, xx - 170) < 22)
    for name in ("square0", "square1", "ring0", "ring1"):
        mask = np.zeros((SIZE, SIZE), np.uint8)
        mask[SQUARE if name.startswith("square") else ring] = 255
        Image.fromarray(mask).save(masks / f"{name}_mask.png")
    result = CliRunner().invoke(main, ["evaluate", "segmentation", "-p", str(project), "--masks", str(masks), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["n_images"] == 7 and report["n_defective"] == 4 and report["mode"] == "reference"
    assert report["pixel_auroc"] > 0.95 and report["image_auroc"] == 1.0 and report["pro"] > 0.7
    assert "masks for 4 of 7 images" in report["masks"]

    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["maps", "export", "-p", str(project), "-o", str(out), "--threshold", "3"])
    assert result.exit_code == 0, result.output
    mask = np.asarray(Image.open(out / "square0.mask.png")) > 0
    heat = Image.open(out / "square0.map.png")
    assert heat.size == (SIZE, SIZE) and heat.mode == "RGB" and mask.shape == (SIZE, SIZE)
    assert mask[SQUARE].mean() > 0.9 and mask.mean() < 0.2, "the mask covers the defect and little else"
    assert not (np.asarray(Image.open(out / "normal0.mask.png")) > 0).mean() > 0.01


def test_a_read_only_connection_computes_and_caches_maps_and_a_writer_scores_them_later(texture_project, tmp_path):
    """The app computes the map on screen without the writer lock (labelling goes on); the maps it cached
    are not computed again, and the next writer records their image scores."""
    import shutil

    shutil.copytree(texture_project, tmp_path / "copy")
    root = tmp_path / "copy" / "project"
    with Project.open(root, writable=True) as project:
        PixelMaps(project).fit()
        ids = item_ids(project, tmp_path / "copy")
    with Project.open(root) as reader:
        maps = PixelMaps(reader)
        assert list(maps.compute([ids["square0"]], store_scores=False)) == [ids["square0"]]
        assert maps.map(ids["square0"]) is not None and maps.map(ids["normal0"]) is None
        assert np.isnan(maps.scores()).all()
    with Project.open(root, writable=True) as project:
        maps = PixelMaps(project)
        assert ids["square0"] not in maps.compute(), "a map computed read-only is cached"
        scores = maps.scores()
        assert np.isfinite(scores[list(ids.values())]).all()
        assert scores[ids["square0"]] == pytest.approx(maps.map(ids["square0"]).max())


def test_evaluate_segmentation_refuses_a_mask_folder_that_matches_no_image(texture_project, tmp_path):
    from click.testing import CliRunner

    from oddscope.core.cli import main

    (tmp_path / "masks").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "masks" / "unrelated_mask.png")
    result = CliRunner().invoke(main, ["evaluate", "segmentation", "-p", str(texture_project / "project"),
                                       "--masks", str(tmp_path / "masks")])
    assert result.exit_code == 1 and "no mask in" in result.output and "1 mask files matched no image" in result.output


def test_defects_painted_in_the_app_are_exported_as_ground_truth_for_evaluate(texture_project, tmp_path):
    import json
    import shutil

    from click.testing import CliRunner

    from oddscope.core.cli import main

    root = shutil.copytree(texture_project, tmp_path / "copy")
    with Project.open(root / "project") as project:
        painted = project.layout.defect_mask(item_ids(project, root)["square0"])
    painted.parent.mkdir(parents=True, exist_ok=True)
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[SQUARE] = 255
    Image.fromarray(mask).save(painted)  # what the app's Paint defect writes
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["maps", "export", "-p", str(root / "project"), "-o", str(out)])
    assert result.exit_code == 0 and "1 defect mask(s) painted" in result.output, result.output
    assert (np.asarray(Image.open(out / "defects" / "square0.png")) > 0).sum() == mask.astype(bool).sum()
    result = CliRunner().invoke(main, ["evaluate", "segmentation", "-p", str(root / "project"),
                                       "--masks", str(out / "defects"), "--json"])
    report = json.loads(result.output)
    assert report["n_defective"] == 1 and report["pixel_auroc"] > 0.9
