"""Projects that move, and images that disappear: still opened, exported, and never fatal."""

import os
import shutil

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hostile import FakeEncoder
from PIL import Image

from oddscope.app.cli import main
from oddscope.core.models import encoders
from oddscope.core.project.features import load_features
from oddscope.core.project.store import Project
from oddscope.core.workflows.pipeline import IndexOptions, index_images

N = 12
QUICK = ["--no-map", "--no-clusters", "--detectors", "knn", "-q", "--workers", "0"]


@pytest.fixture(autouse=True)
def fake_encoder(monkeypatch):
    fake = FakeEncoder()
    monkeypatch.setattr(encoders, "load_encoder", lambda *args, **kwargs: fake)
    return fake


def _survey(images, project_dir):
    """N distinct images indexed into a project; item 0 labelled."""
    images.mkdir(parents=True)
    for i in range(N):
        Image.fromarray(np.full((10, 10, 3), 10 + 2 * i * i, np.uint8)).save(images / f"{i:02d}.png")
    with Project.create(project_dir) as project:
        index_images(project, images, options=IndexOptions(detectors=("knn",), make_map=False,
                                                           make_clusters=False, workers=0))
        project.set_label(0, score=5, tags=["odd"])
    return project_dir


def _cli(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def _export(project_dir, out) -> pd.DataFrame:
    _cli("export", "-p", project_dir, "--out", out)
    return pd.read_csv(out).set_index("item_id").sort_index()


def test_project_moved_with_its_images_exports_the_new_paths(tmp_path):
    _survey(tmp_path / "survey" / "images", tmp_path / "survey" / "project")
    moved = tmp_path / "disk2" / "renamed"
    moved.parent.mkdir()
    shutil.move(str(tmp_path / "survey"), moved)
    table = _export(moved / "project", tmp_path / "out.csv")
    assert list(table["path"]) == [str(moved / "images" / f"{i:02d}.png") for i in range(N)]
    assert table["path"].map(os.path.exists).all() and (table["status"] == "ok").all()
    assert table.loc[0, "label_score"] == 5 and table.loc[0, "tags"] == "odd"
    with Project.open(moved / "project") as project:
        assert load_features(project, project.get_setting("encoder")["key"]).shape == (N, 16)
    nearest = _cli("neighbours", "-p", moved / "project", moved / "images" / "01.png", "-k", "1", "--metric", "l2")
    assert str(moved / "images" / "00.png") in nearest  # the most similar image, at its new place


def test_project_moved_alone_keeps_finding_images_elsewhere(tmp_path):
    _survey(tmp_path / "data" / "images", tmp_path / "work" / "project")
    shutil.move(str(tmp_path / "work" / "project"), tmp_path / "project_copy")
    table = _export(tmp_path / "project_copy", tmp_path / "out.csv")
    assert list(table["path"]) == [str(tmp_path / "data" / "images" / f"{i:02d}.png") for i in range(N)]


def test_images_that_disappear_are_missing_not_fatal_and_come_back(tmp_path):
    images = tmp_path / "survey" / "images"
    project_dir = _survey(images, tmp_path / "survey" / "project")
    (images / "00.png").rename(tmp_path / "aside.png")  # labelled, then gone (an unplugged disk)
    (images / "05.png").unlink()
    _cli("index", images, "-p", project_dir, *QUICK)
    table = _export(project_dir, tmp_path / "out.csv")
    assert list(table.index[table["status"] == "missing"]) == [0, 5]
    assert (table.loc[[0, 5], "reason"] == "file not found").all() and table.loc[0, "label_score"] == 5
    assert table.loc[[0, 5], "rank"].eq(0).all() and (table.drop([0, 5])["rank"] > 0).all()
    skipped = pd.read_csv(project_dir / "skipped.csv")
    assert list(skipped["path"]) == [str(images / "00.png"), str(images / "05.png")]

    (tmp_path / "aside.png").rename(images / "00.png")
    output = _cli("index", images, "-p", project_dir, *QUICK)
    assert "features computed 0, reused 12" in output  # back, with its features: nothing recomputed
    table = _export(project_dir, tmp_path / "out.csv")
    assert list(table.index[table["status"] == "missing"]) == [5] and table.loc[0, "rank"] > 0


def test_check_files_marks_and_restores_and_reads_only_when_read_only(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    paths = [images / f"{i}.png" for i in range(4)]
    for p in paths:
        p.write_bytes(b"not decoded here")
    with Project.create(tmp_path / "p") as project:
        project.add_items(paths)
        project.set_status([(3, "skipped", "bad file")])
        paths[1].unlink()
        paths[3].unlink()
        with Project.open(tmp_path / "p") as reader:
            assert reader.check_files().tolist() == [1]
            assert reader.items()["status"].tolist() == ["pending", "pending", "pending", "skipped"]
        assert project.check_files().tolist() == [1]
        assert project.items()["status"].tolist() == ["pending", "missing", "pending", "skipped"]
        paths[1].write_bytes(b"back")
        assert project.check_files().tolist() == []
        assert project.items()["status"].tolist() == ["pending", "pending", "pending", "skipped"]
