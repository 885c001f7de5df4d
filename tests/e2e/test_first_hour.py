"""A new user's first hour with the `oddscope` command: empty runs, odd layouts, no display, path rules."""

import os
import sys

import numpy as np
import pandas as pd
from click.testing import CliRunner
from PIL import Image

from oddscope.app import main as app_main
from oddscope.app.cli import main
from oddscope.core.project.store import Project


def run(*args, **kwargs):
    return CliRunner(**kwargs).invoke(main, [str(a) for a in args], catch_exceptions=False)


def _png(path, value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((32, 32, 3), value, np.uint8)).save(path)
    return path


def test_a_refused_run_says_why_every_file_was_skipped(tmp_path):
    images = tmp_path / "imgs"
    images.mkdir()
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (images / "empty.jpg").write_bytes(b"")
    result = run("index", images, "--project", tmp_path / "proj", "-q")
    assert result.exit_code == 1
    assert "only 0 readable image(s) to analyse" in result.output and "Add readable images" in result.output
    assert "broken.png: truncated or corrupt image" in result.output
    assert "empty.jpg: empty file (0 bytes)" in result.output
    skipped = pd.read_csv(tmp_path / "proj" / "skipped.csv")
    assert sorted(skipped["path"].str.rsplit("/", n=1).str[-1]) == ["broken.png", "empty.jpg"]


def test_a_project_inside_its_image_folder_never_indexes_itself(tmp_path):
    images = tmp_path / "imgs"
    for i in range(3):
        _png(images / f"{i}.png", 40 * i)
    (images / "bad.png").write_bytes(b"")
    first = run("index", images, "--project", images / "proj", "-q", "--no-map", "--no-clusters",
                "--detectors", "knn")
    assert first.exit_code == 0, first.output
    assert "Items     4 (3 new, 1 skipped); features computed 3" in first.output
    _png(images / "proj" / "thumbnails" / "0.png")  # as the app leaves them
    again = run("index", images, "--project", images / "proj", "-q", "--no-map", "--no-clusters",
                "--detectors", "knn")
    assert again.exit_code == 0, again.output
    assert "Items     4 (0 new, 1 skipped); features computed 0, reused 3" in again.output
    assert "analysis kept" in again.output and "score_knn" not in again.output
    changed = run("index", images, "--project", images / "proj", "-q", "--no-map", "--no-clusters",
                  "--detectors", "knn", "-k", "1")
    assert changed.exit_code == 0 and "analysis kept" not in changed.output  # other options: analysed again


def test_without_a_display_open_says_so_and_a_screenshot_renders_offscreen(tmp_path, monkeypatch):
    Project.create(tmp_path / "proj").close()
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    platforms = []
    monkeypatch.setattr(app_main, "run_app", lambda root, screenshot=None: platforms.append(
        os.environ.get("QT_QPA_PLATFORM")) or 0)
    refused = run("open", tmp_path / "proj")
    assert refused.exit_code == 2 and "no display" in refused.output and "--screenshot" in refused.output
    assert platforms == []  # Qt never started
    shot = run("open", tmp_path / "proj", "--screenshot", tmp_path / "w.png")
    assert shot.exit_code == 0 and platforms == ["offscreen"]
