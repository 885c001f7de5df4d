"""A new user's first hour with the `oddscope` command: empty runs, odd layouts, no display, path rules."""

import json
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
    assert "only 0 readable image(s) to analyse" in result.output and "listed above" in result.output
    assert "broken.png: truncated or corrupt image" in result.output
    assert "empty.jpg: empty file (0 bytes)" in result.output
    skipped = pd.read_csv(tmp_path / "proj" / "skipped.csv")
    assert sorted(skipped["path"].str.rsplit("/", n=1).str[-1]) == ["broken.png", "empty.jpg"]
    info = run("info", "--project", tmp_path / "proj")
    assert info.exit_code == 0 and "Next      Nothing to explore yet: 0 of the 2 images could be read" in info.output


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


def test_csv_paths_follow_one_rule_and_bad_rows_fail_the_command(demo_project, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    images = sorted(p.name for p in (demo_project.parent / "images").iterdir())
    labels = tmp_path / "labels.csv"  # paths relative to the image folder, the CSV elsewhere
    labels.write_text(f"path,score\n{images[0]},5\n{images[1]},9\n")
    result = run("labels", "import", "--project", demo_project, labels)
    assert result.exit_code == 1 and "Applied 1 label(s)" in result.output and "line 3: score must be" in result.output
    assert "2 relative to the project's image folder" in result.output
    labels.write_text(f"path,score\nnowhere/{images[0]},5\n")
    result = run("labels", "import", "--project", demo_project, labels)
    assert result.exit_code == 1 and "no path in" in result.output and "current directory" in result.output
    assert "Applied" not in result.output

    truth = pd.read_csv(demo_project.parent / "truth.csv")
    truth["path"] = truth["path"].map(lambda p: p.rsplit("/", 1)[-1])
    truth["is_anomaly"] = truth["is_anomaly"].map({0: "no", 1: "yes"})
    truth.to_csv(tmp_path / "truth.csv", index=False)
    good = run("evaluate", "--project", demo_project, "--truth", tmp_path / "truth.csv")
    assert good.exit_code == 0 and "150 items" in good.output
    assert "150 relative to the project's image folder" in good.output
    truth["is_anomaly"] = np.where(truth["is_anomaly"] == "yes", 0.8, 0.1)
    truth.to_csv(tmp_path / "probabilities.csv", index=False)
    refused = run("evaluate", "--project", demo_project, "--truth", tmp_path / "probabilities.csv")
    assert refused.exit_code == 1 and "line 2: is_anomaly must be 0/1" in refused.output
    assert "--threshold" in refused.output
    thresholded = run("evaluate", "--project", demo_project, "--truth", tmp_path / "probabilities.csv",
                      "--threshold", "0.5", "--json")
    assert thresholded.exit_code == 0
    assert json.loads(thresholded.output)["n_anomalies"] == json.loads(run(
        "evaluate", "--project", demo_project, "--truth", demo_project.parent / "truth.csv", "--json").output)[
        "n_anomalies"]
