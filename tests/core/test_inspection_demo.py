"""Tests for the synthetic inspection set (oddscope.core.data.inspection) and `oddscope demo --inspection`."""

import csv

import numpy as np
import pytest
from click.testing import CliRunner
from hostile import FakeEncoder
from PIL import Image

from oddscope.core.cli import main
from oddscope.core.data.inspection import DEFECTS, KINDS, make_inspection, render_inspection
from oddscope.core.models import encoders
from oddscope.core.project.layout import PIXEL_MAP_SCORE
from oddscope.core.project.store import Project

SMALL = dict(n_reference=6, n_normal=4, n_defective=8, size=96)


def _read_truth(csv_path):
    with open(csv_path, newline="") as fh:
        return list(csv.DictReader(fh))


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.png"))}


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    return make_inspection(tmp_path_factory.mktemp("inspection"), seed=3, **SMALL)


# --- the generated folder -------------------------------------------------------------


def test_same_seed_gives_identical_bytes_and_other_seed_differs(small_set, tmp_path):
    again = make_inspection(tmp_path / "again", seed=3, **SMALL)
    other = make_inspection(tmp_path / "other", seed=4, **SMALL)
    assert again.truth_csv.read_bytes() == small_set.truth_csv.read_bytes()
    assert _files(again.root) == _files(small_set.root)
    images = {k: v for k, v in _files(other.root).items() if not k.startswith("masks/")}
    assert all(images[k] != v for k, v in _files(small_set.root).items() if k in images)


def test_layout_counts_and_truth_csv_match_the_files(small_set):
    root = small_set.root
    assert sorted(p.name for p in small_set.reference_dir.iterdir()) == [
        f"{kind}_{i:04d}.png" for kind in sorted(KINDS) for i in range(3)]
    rows = _read_truth(small_set.truth_csv)
    assert list(rows[0]) == ["path", "is_anomaly", "kind", "defect"]
    assert [r["path"] for r in rows] == sorted(f"images/{p.name}" for p in small_set.images_dir.iterdir())
    assert len(rows) == 12 and (small_set.n_reference, small_set.n_normal, small_set.n_defective) == (6, 4, 8)
    for kind in KINDS:
        of_kind = [r for r in rows if r["kind"] == kind]
        assert all(r["path"].startswith(f"images/{kind}_") for r in of_kind)
        assert sum(r["is_anomaly"] == "1" for r in of_kind) == 4 and len(of_kind) == 6
        assert sorted(r["defect"] for r in of_kind if r["is_anomaly"] == "1") == sorted(DEFECTS[kind])
    masks = sorted(p.name for p in small_set.masks_dir.iterdir())
    assert masks == sorted(r["path"].split("/")[1] for r in rows if r["is_anomaly"] == "1")  # normals: no mask
    for r in rows:
        assert (r["is_anomaly"] == "1") == (r["defect"] != "")
        with Image.open(root / r["path"]) as im:
            assert (im.mode, im.size) == ("RGB", (96, 96))
        if r["defect"]:
            mask = np.asarray(Image.open(small_set.masks_dir / r["path"].split("/")[1]))
            assert mask.shape == (96, 96) and set(np.unique(mask)) == {0, 255}


def test_rerun_in_the_same_folder_replaces_the_old_set(small_set, tmp_path):
    make_inspection(tmp_path, seed=0, **SMALL)
    smaller = make_inspection(tmp_path, n_reference=2, n_normal=1, n_defective=1, size=96)
    assert len(list(smaller.reference_dir.iterdir())) == 2
    assert len(list(smaller.images_dir.iterdir())) == 2 == len(_read_truth(smaller.truth_csv))
    assert len(list(smaller.masks_dir.iterdir())) == 1


def test_progress_is_reported_up_to_the_total(tmp_path):
    calls = []
    make_inspection(tmp_path, n_reference=20, n_normal=10, n_defective=10, size=64,
                    progress=lambda *args: calls.append(args))
    assert calls[-1] == ("demo", 40, 40) and len(calls) >= 2


@pytest.mark.parametrize("kwargs", [dict(n_reference=-1), dict(n_normal=0, n_defective=0), dict(size=32)])
def test_invalid_arguments_raise(tmp_path, kwargs):
    with pytest.raises(ValueError):
        make_inspection(tmp_path, **{**SMALL, **kwargs})


# --- single images --------------------------------------------------------------------


DEFECTIVE = [(kind, defect) for kind in KINDS for defect in DEFECTS[kind]]


@pytest.mark.parametrize("kind, defect", DEFECTIVE)
def test_mask_is_exactly_where_the_defect_changes_the_image(kind, defect):
    """Against the same part and noise rendered without the defect: every changed pixel is in the mask, and the
    mask is not much larger than what clearly changed (the defect is visible, not a faint halo)."""
    for k in range(6):
        seed = np.random.SeedSequence([11, k])
        image, mask = render_inspection(kind, defect, seed)
        clean, no_mask = render_inspection(kind, defect, seed, with_defect=False)
        change = np.abs(image.astype(int) - clean).max(axis=2)
        assert not no_mask.any() and mask.dtype == bool
        assert not change[~mask].any()
        assert 20 <= mask.sum() <= 0.05 * mask.size  # visible, not trivially huge
        assert mask.sum() <= 3 * (change > 12).sum()


@pytest.mark.parametrize("kind", KINDS)
def test_normal_images_vary_and_have_no_mask(kind):
    images = []
    for k in range(4):
        image, mask = render_inspection(kind, None, [5, k])
        assert image.shape == (256, 256, 3) and image.dtype == np.uint8 and not mask.any()
        images.append(image.astype(float))
    assert all(np.abs(images[0] - other).mean() > 5 for other in images[1:])  # shifted, turned, lit differently
    assert not np.array_equal(render_inspection(kind, None, 0)[0], render_inspection(kind, None, 1)[0])


def test_unknown_kind_defect_or_tiny_size_raise():
    with pytest.raises(ValueError):
        render_inspection("pill", None, 0)
    with pytest.raises(ValueError):
        render_inspection("texture", "missing", 0)  # a woven texture has no piece to lose
    with pytest.raises(ValueError):
        render_inspection("object", None, 0, size=32)


# --- `oddscope demo --inspection` -------------------------------------------------------


def test_cli_writes_the_set_and_indexes_it_in_reference_mode(monkeypatch, tmp_path):
    monkeypatch.setattr(encoders, "load_encoder", lambda *args, **kwargs: FakeEncoder())
    out = tmp_path / "insp"
    result = CliRunner().invoke(main, ["demo", "--inspection", "--out", str(out), "--n-images", "48", "--no-gui",
                                       "-q"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Wrote 24 reference images" in result.output and "Mode      reference" in result.output
    assert f"oddscope evaluate --project {out / 'project'} --truth {out / 'truth.csv'}" in result.output
    assert f"oddscope evaluate segmentation --project {out / 'project'} --masks {out / 'masks'}" in result.output
    assert len(_read_truth(out / "truth.csv")) == 24 and len(list((out / "masks").iterdir())) == 12
    with Project.open(out / "project") as project:
        assert (project.items()["status"] == "ok").sum() == 48
        assert all(run["params"]["mode"] == "reference" for run in project.latest_runs("detector").values())
        map_scores = project.load_array(PIXEL_MAP_SCORE)
        test_ids = project.ids_with_status("ok", "test")
        assert np.isfinite(map_scores[test_ids]).all(), "the demo computes every test image's heat map"
    evaluated = CliRunner().invoke(main, ["evaluate", "--project", str(out / "project"), "--truth",
                                          str(out / "truth.csv"), "--json"], catch_exceptions=False)
    assert evaluated.exit_code == 0 and '"n_items": 24' in evaluated.output and '"n_anomalies": 12' in evaluated.output
