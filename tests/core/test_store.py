"""The project store: items, labels with undo/redo, the writer lock, format versions."""

import sqlite3

import numpy as np
import pandas as pd
import pytest

from oddscope.core.project.layout import DB_NAME
from oddscope.core.project.store import Project, ProjectError, ProjectLocked


@pytest.fixture
def project(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    paths = []
    for i in range(4):
        p = images / f"{i}.png"
        p.write_bytes(b"x")
        paths.append(p)
    with Project.create(tmp_path / "proj") as proj:
        proj.add_items(paths, metas=[{"band": "r", "mag": i} for i in range(4)])
        yield proj


def test_items_are_dense_rows_with_relative_paths_and_metadata(project):
    items = project.items()
    assert list(items.index) == [0, 1, 2, 3]
    assert items.loc[2, "path"] == "../images/2.png"  # images beside the project: stored relative
    assert items.loc[3, "mag"] == 3 and items.loc[0, "band"] == "r"
    assert project.resolve(items.loc[1, "path"]) == project.root.parent / "images" / "1.png"
    assert project.item_id(project.root.parent / "images" / "1.png") == 1


def test_resolve_all_matches_resolve_for_relative_and_absolute_paths(project, tmp_path):
    elsewhere = (tmp_path.parent / "elsewhere.png").resolve()
    stored = list(project.items()["path"]) + [elsewhere.as_posix()]
    assert project.resolve_all(stored) == [str(project.resolve(s)) for s in stored]
    assert project.resolve_all(stored)[-1] == str(elsewhere)
    # the folder-at-a-time path: bare names, dot folders, URLs and names that are no file name, in one call
    odd = ["a.png", "./b.png", "../up/c.png", "sub/../d.png", "s3://bucket/x/e.png", "folder/", "x/..", "/f.png"]
    assert project.resolve_all(pd.Series(stored + odd)) == [str(project.resolve(s)) for s in stored + odd]


def test_adding_the_same_files_again_adds_nothing(project):
    assert project.add_items([project.root.parent / "images" / "0.png"]) == 0
    assert project.n_items == 4


def test_labels_undo_redo_and_history(project):
    project.set_label(1, score=3)
    project.add_tag(1, "ring")
    project.set_label(2, score=0, tags="artefact; trail")
    assert project.label(1) == (3, ["ring"])
    assert project.label(2) == (0, ["artefact", "trail"])
    assert project.undo() == 2 and project.label(2) == (None, [])
    assert project.undo() == 1 and project.label(1) == (3, [])
    assert project.redo() == 1 and project.label(1) == (3, ["ring"])
    project.set_label(3, score=5)  # a new edit ends the redo chain
    assert project.redo() is None
    labels = project.labels()
    assert labels.loc[1, "score"] == 3 and labels.loc[3, "score"] == 5 and 2 not in labels.index
    assert project.all_tags() == ["ring"]
    assert len(project.label_history()) == 3


@pytest.mark.parametrize("bad", [6, -1, 2.5, "high", "7"])
def test_bad_scores_are_refused_and_nothing_changes(project, bad):
    with pytest.raises(ValueError, match="0-5"):
        project.set_label(0, score=bad)
    assert project.label(0) == (None, [])


def test_set_labels_is_all_or_nothing(project):
    with pytest.raises(ValueError):
        project.set_labels([(0, 4, ...), (1, 9, ...)])
    assert project.labels().empty


def test_second_writer_is_refused_but_readers_work(project):
    with pytest.raises(ProjectLocked, match="open for writing by pid"):
        Project.open(project.root, writable=True)
    project.set_label(0, score=4)
    with Project.open(project.root) as reader:
        assert reader.label(0) == (4, [])
        with pytest.raises(ProjectError, match="read-only"):
            reader.set_label(0, score=1)
    project.close()
    Project.open(project.root, writable=True).close()  # the lock is released on close


def test_arrays_and_settings_round_trip(project):
    project.save_array("score_knn", np.arange(4, dtype=np.float32))
    project.set_setting("ranking", "knn")
    assert project.array_names() == ["score_knn"]
    np.testing.assert_array_equal(project.load_array("score_knn"), [0, 1, 2, 3])
    assert project.get_setting("ranking") == "knn" and project.get_setting("nope", 7) == 7


@pytest.mark.parametrize("version,message", [("0", "older Oddscope"), ("99", "newer Oddscope")])
def test_other_format_versions_fail_with_a_clear_message(project, version, message):
    root = project.root
    project.close()
    with sqlite3.connect(root / DB_NAME) as conn:
        conn.execute("UPDATE info SET value=? WHERE key='schema_version'", (version,))
    with pytest.raises(ProjectError, match=message):
        Project.open(root)


def test_not_a_project(tmp_path):
    with pytest.raises(ProjectError, match="not an Oddscope project"):
        Project.open(tmp_path)
    (tmp_path / "stuff.txt").write_text("x")
    with pytest.raises(ProjectError, match="not an Oddscope project"):
        Project.create(tmp_path)


def _durability(project: Project) -> tuple[str, int]:
    conn = project._conn  # the live connection: these pragmas are per connection, not stored in the file
    return conn.execute("PRAGMA journal_mode").fetchone()[0], conn.execute("PRAGMA synchronous").fetchone()[0]


def test_writer_connection_is_wal_with_synchronous_full(project):
    """A commit is durable only with synchronous=FULL: in WAL mode NORMAL and OFF skip the fsync at commit,
    and a power loss then drops acknowledged labels (a SIGKILL cannot show it: the OS still holds the data).
    ``tests/e2e/test_crash_safety.py`` checks the fsync itself."""
    full = 2  # PRAGMA synchronous: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA
    assert _durability(project) == ("wal", full)  # Project.create
    root = project.root
    project.close()
    with Project.open(root, writable=True) as reopened:
        assert _durability(reopened) == ("wal", full)
