"""Hostile inputs: the run finishes, every good file is indexed, every bad one is reported with a reason."""

import os
import time

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hostile import LONG_NAME, UNREADABLE, FakeEncoder, display_name, make_hostile_folder
from PIL import Image

from oddscope.app.cli import main
from oddscope.core.data.images import ImageReadError, load_array
from oddscope.core.models import encoders
from oddscope.core.project.features import load_features
from oddscope.core.project.store import Project
from oddscope.core.workflows.pipeline import IndexOptions, index_images

QUICK = ["--no-map", "--no-clusters", "--detectors", "knn", "-q"]


@pytest.fixture
def hostile(tmp_path, monkeypatch):
    """The hostile folder and its expected outcomes; the unreadable file is unreadable even to root."""
    folder = tmp_path / "hostile"
    expected = make_hostile_folder(folder)
    secret = str(folder / UNREADABLE)
    if os.access(secret, os.R_OK):  # root reads anything: answer as for an ordinary user
        real_access = os.access
        monkeypatch.setattr(os, "access",
                            lambda p, mode, **kw: False if str(p) == secret else real_access(p, mode, **kw))
    return folder, expected


@pytest.fixture
def fake_encoder(monkeypatch):
    fake = FakeEncoder()
    monkeypatch.setattr(encoders, "load_encoder", lambda *args, **kwargs: fake)
    return fake


def _names(paths) -> set:
    return {display_name(os.path.basename(p)) for p in paths}


def _check_outcomes(project_dir, expected):
    """Every good file indexed exactly once, every bad one in skipped.csv with its one-line reason."""
    good = {name for name, outcome in expected.items() if outcome == "ok"}
    with Project.open(project_dir) as project:
        items = project.items(with_meta=False)
        ok = items[items["status"] == "ok"]
        assert _names(project.resolve(p) for p in ok["path"]) == good
        assert len(ok) == len(good)
        features = load_features(project, project.get_setting("encoder")["key"])
        assert features.shape[0] == len(good) and np.isfinite(features).all()
    skipped = pd.read_csv(project_dir / "skipped.csv", keep_default_na=False)
    reasons = dict(zip([display_name(os.path.basename(p)) for p in skipped["path"]], skipped["reason"]))
    assert len(reasons) == len(skipped)
    assert set(reasons) == set(expected) - good
    for name, reason in reasons.items():
        assert expected[name] in reason, (name, reason)
        assert reason and "\n" not in reason
    assert all(os.path.isabs(p) for p in skipped["path"])
    return len(good), reasons


def test_index_survives_every_hostile_file(hostile, fake_encoder, tmp_path):
    folder, expected = hostile
    with Project.create(tmp_path / "project") as project:
        summary = index_images(project, folder, options=IndexOptions(
            detectors=("knn",), make_map=False, make_clusters=False, batch_size=8, workers=1))
    n_good, reasons = _check_outcomes(tmp_path / "project", expected)
    assert n_good >= 20 and len(reasons) >= 12  # (23 and 14 on Linux; a few cases need its file system)
    assert summary.extraction.computed == fake_encoder.encoded == n_good
    assert len(summary.skipped) == len(reasons)
    scores = np.load(tmp_path / "project" / "arrays" / "score_knn.npy")
    assert np.isfinite(scores).sum() == n_good


def test_cli_index_prints_the_skipped_files(hostile, fake_encoder, tmp_path):
    folder, expected = hostile
    result = CliRunner().invoke(main, ["index", str(folder), "-p", str(tmp_path / "p"), "--workers", "0", *QUICK])
    assert result.exit_code == 0, result.output
    n_good, reasons = _check_outcomes(tmp_path / "p", expected)
    assert f"Skipped   {len(reasons)} file(s)" in result.output
    shown = [line for line in result.output.splitlines() if line.startswith("  ") and ": " in line][:10]
    assert len(shown) == 10 and f"... and {len(reasons) - 10} more" in result.output
    for line in shown:
        path, reason = line.strip().split(": ", 1)
        assert reasons[display_name(os.path.basename(path))] == reason
    # Indexing again: nothing new to encode, the same files skipped, nothing fatal.
    again = CliRunner().invoke(main, ["index", str(folder), "-p", str(tmp_path / "p"), "--workers", "0", *QUICK])
    assert again.exit_code == 0 and f"features computed 0, reused {n_good}" in again.output
    _check_outcomes(tmp_path / "p", expected)


@pytest.mark.slow
def test_cli_index_end_to_end_with_the_real_encoder(hostile, tmp_path):
    folder, expected = hostile
    result = CliRunner().invoke(main, ["index", str(folder), "-p", str(tmp_path / "p"), *QUICK])
    assert result.exit_code == 0, result.output
    n_good, reasons = _check_outcomes(tmp_path / "p", expected)
    assert "efficientnet-lite0 (1280-d" in result.output and f"features computed {n_good}," in result.output
    assert f"Skipped   {len(reasons)} file(s)" in result.output


def test_decoding_details(hostile):
    folder, _ = hostile
    assert load_array(folder / "exif_rotated.jpg").shape[:2] == (20, 10)  # stored 10x20, shown rotated
    with Image.open(folder / "animated.gif") as gif:
        assert gif.n_frames == 3
        first = np.asarray(gif.convert("RGB"))
    assert (load_array(folder / "animated.gif") == first).all()
    sky = load_array(folder / "nan_inf.fits")
    assert np.isfinite(sky).all() and sky.shape == (16, 16) and abs(sky[2, 2] - np.median(sky)) < 5
    assert load_array(folder / "cube.fits").shape == (16, 16)
    assert load_array(folder / "grey16.png").dtype == np.uint16
    assert load_array(folder / "cmyk.jpg").shape == (20, 20, 3)
    assert load_array(folder / LONG_NAME).shape == (12, 12, 3)
    # A large JPEG is decoded at reduced size (draft mode): for the encoder, and above max_pixels.
    assert load_array(folder / "large.jpg", target_side=448).shape == (750, 1000)
    assert np.prod(load_array(folder / "large.jpg", max_pixels=1_000_000).shape) <= 4 * 1_000_000


@pytest.mark.parametrize("name", ["huge_header.png", "over_max_pixels.png", "huge_header.tif"])
def test_huge_images_are_refused_from_their_header_without_decoding(hostile, monkeypatch, name):
    import tifffile
    from PIL import ImageFile

    folder, _ = hostile
    decoded = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self))
    monkeypatch.setattr(tifffile.TiffPage, "asarray", lambda self, *a, **kw: decoded.append(self))
    start = time.perf_counter()
    with pytest.raises(ImageReadError, match="too large") as err:
        load_array(folder / name)
    assert not decoded and time.perf_counter() - start < 1.0
    if name != "huge_header.png":  # Pillow's own guard fires first there; ours says how to raise the limit
        assert "--max-pixels" in str(err.value)


def test_fits_larger_than_max_pixels_is_refused_from_its_header(tmp_path):
    from astropy.io import fits

    fits.writeto(tmp_path / "wide.fits", np.zeros((2, 100, 200), np.float32))
    with pytest.raises(ImageReadError, match="too large"):
        load_array(tmp_path / "wide.fits", max_pixels=10_000)
    assert load_array(tmp_path / "wide.fits", max_pixels=20_000).shape == (100, 200)


def test_manifest_with_non_utf8_bytes_costs_only_those_rows(tmp_path, fake_encoder):
    from oddscope.core.data.ingest import read_manifest

    for i in range(3):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "m.csv").write_bytes(b"path,field\n0.png,caf\xe9\n1.png,ok\ncaf\xe9.png,x\n2.png,\xff\n")
    scan = read_manifest(tmp_path / "m.csv")
    assert [os.path.basename(p) for p in scan.paths] == ["0.png", "1.png", "2.png"]
    assert [m["field"] for m in scan.metas] == ["caf\\xe9", "ok", "\\xff"]
    assert [(os.path.basename(p), r) for p, r in scan.skipped] == [
        ("caf\\xe9.png", "file name is not valid UTF-8; rename the file")]
    with Project.create(tmp_path / "p") as project:
        summary = index_images(project, tmp_path / "m.csv", options=IndexOptions(
            detectors=("knn",), make_map=False, make_clusters=False, workers=0))
        assert summary.extraction.computed == 3 and len(summary.skipped) == 1
        assert project.items()["field"].tolist()[:3] == ["caf\\xe9", "ok", "\\xff"]
