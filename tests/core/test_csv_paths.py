"""One rule for the paths in a user's CSV (labels, truth): the CSV's folder, the image folder, the current
directory, in that order; which one matched is said, and a file matching nothing is an error."""

import numpy as np
import pytest

from oddscope.core.project.csv_paths import CsvPaths, remember_image_root
from oddscope.core.project.store import Project
from oddscope.core.workflows.evaluate import anomaly_flag, read_truth


@pytest.fixture
def project(tmp_path):
    images = tmp_path / "survey" / "images"
    (images / "sub").mkdir(parents=True)
    paths = [images / "a.png", images / "sub" / "b.png"]
    for p in paths:
        p.write_bytes(b"x")
    with Project.create(tmp_path / "survey" / "project") as proj:
        proj.add_items(paths)
        remember_image_root(proj, images)
        yield proj


def test_each_base_in_turn_and_the_summary_says_which(project, tmp_path, monkeypatch):
    (tmp_path / "notes").mkdir()
    monkeypatch.chdir(tmp_path / "survey")
    paths = CsvPaths(project, tmp_path / "notes" / "labels.csv")
    assert paths.item_id("../survey/images/a.png") == 0  # the CSV's folder
    assert paths.item_id("sub/b.png") == 1  # the image folder
    assert paths.item_id("images/a.png") == 0  # the current directory
    assert paths.item_id(str(tmp_path / "survey" / "images" / "sub" / "b.png")) == 1
    assert paths.item_id("c.png") is None and paths.nothing_matched() is None
    summary = paths.summary()
    assert "1 relative to the CSV file's folder" in summary and "1 relative to the project's image folder" in summary
    assert "1 relative to the current directory" in summary and "1 absolute" in summary
    assert "1 not in the project" in summary


def test_a_file_matching_nothing_is_an_error_that_names_the_rule(project, tmp_path):
    paths = CsvPaths(project, tmp_path / "t.csv")
    assert paths.nothing_matched() is None  # no row yet
    paths.item_id("elsewhere/a.png")
    message = paths.nothing_matched()
    assert "'elsewhere/a.png'" in message and "the CSV file's folder" in message and "current directory" in message


def test_truth_flags_are_strict_unless_a_threshold_is_given():
    for text, flag in [("1", 1), ("0", 0), ("True", 1), ("false", 0), (" yes ", 1), ("NO", 0), ("1.0", 1)]:
        assert anomaly_flag(text) == flag
    for text in ("0.73", "maybe", "", "2"):
        with pytest.raises(ValueError, match="--threshold"):
            anomaly_flag(text)
    assert anomaly_flag("0.73", threshold=0.5) == 1 and anomaly_flag("0.2", threshold=0.5) == 0
    with pytest.raises(ValueError, match="expected a number, not 'yes'"):
        anomaly_flag("yes", threshold=0.5)


def test_truth_reports_every_bad_line_and_refuses_a_file_matching_nothing(project, tmp_path):
    truth = tmp_path / "survey" / "truth.csv"
    truth.write_text("path,is_anomaly\nimages/a.png,yes\nimages/sub/b.png,0.4\n")
    with pytest.raises(ValueError, match=r"1 bad 'is_anomaly' value\(s\):\n  line 3: is_anomaly must be 0/1"):
        read_truth(project, truth, parse=anomaly_flag)
    truth.write_text("path,is_anomaly\nimages/a.png,0.9\nimages/sub/b.png,0.4\n")
    rows = read_truth(project, truth, parse=lambda t: anomaly_flag(t, threshold=0.5))
    assert list(rows["ids"]) == [0, 1] and np.array_equal(rows["values"], [1.0, 0.0])
    assert "2 relative to the CSV file's folder" in rows["paths"]
    truth.write_text("path,is_anomaly\nnowhere/a.png,1\n")
    with pytest.raises(ValueError, match="no path in .* names an image of the project"):
        read_truth(project, truth, parse=anomaly_flag)
