"""SIGKILL in the middle of labelling or of feature extraction: nothing acknowledged is lost.

Each test runs the work in a child process (its own session, so its DataLoader
workers die with it), kills it with SIGKILL half-way, then reopens the project.
"""

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hostile import FakeEncoder
from PIL import Image

from oddscope.core.project.features import encoder_key, load_features
from oddscope.core.project.layout import DB_NAME
from oddscope.core.project.store import Project
from oddscope.core.workflows.extraction import extract_features
from oddscope.core.workflows.pipeline import add_source

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
TESTS = str(Path(__file__).parents[1])  # where hostile.py lives

LABELLER = """
import sys
from oddscope.core.project.store import Project

project = Project.open(sys.argv[1], writable=True)
for item_id in range(int(sys.argv[2])):
    project.set_label(item_id, score=item_id % 6, tags=[f"t{item_id}"])
    print(item_id, flush=True)  # acknowledged: set_label returned
"""

EXTRACTOR = """
import sys
sys.path.insert(0, sys.argv[3])
from hostile import FakeEncoder
from oddscope.core.workflows.extraction import extract_features
from oddscope.core.project.store import Project

project = Project.open(sys.argv[1], writable=True)
extract_features(project, FakeEncoder(delay=float(sys.argv[2])), batch_size=32, num_workers=1,
                 progress=lambda stage, done, total: print(done, flush=True))
print("finished", flush=True)
"""


def _start(script: str, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _kill_after(proc: subprocess.Popen, enough) -> list[str]:
    """Read acknowledgements until ``enough(lines)``, SIGKILL the child's whole group, return every line read."""
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line.strip())
            if enough(lines):
                break
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        lines += [line.strip() for line in proc.stdout]  # what it printed before dying
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
    return [line for line in lines if line]


def _integrity(project_dir: Path) -> str:
    with sqlite3.connect(project_dir / DB_NAME) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def test_every_acknowledged_label_survives_sigkill(tmp_path):
    n = 5_000  # far more than it writes before the kill
    with Project.create(tmp_path / "p") as project:
        project.add_items([tmp_path / f"img_{i}.png" for i in range(n)])
    acked = [int(x) for x in _kill_after(_start(LABELLER, tmp_path / "p", n), lambda lines: len(lines) >= 40)]
    assert 40 <= len(acked) < n and acked == list(range(len(acked)))
    assert _integrity(tmp_path / "p") == "ok"
    with Project.open(tmp_path / "p", writable=True) as project:  # the writer lock died with the writer
        labels = project.labels()
        for item_id in acked:
            assert project.label(item_id) == (item_id % 6, [f"t{item_id}"])
        assert len(labels) in (len(acked), len(acked) + 1)  # at most one committed but not yet printed
        project.set_label(0, score=None, tags=[])  # and it is writable again
        assert project.label(0) == (None, [])


SYNCED_LABELLER = """
import os, sys
from oddscope.core.project.store import Project

project = Project.open(sys.argv[1], writable=True)
for item_id in range(int(sys.argv[2])):
    os.write(1, b"set_label called\\n")
    project.set_label(item_id, score=item_id % 6)
    os.write(1, b"set_label returned\\n")
"""


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace to watch the system calls")
def test_every_acknowledged_label_was_fsynced_before_set_label_returned(tmp_path):
    """What survives a power loss is what was fsynced: each set_label must sync the WAL before it returns.

    A SIGKILL cannot show this (the OS still holds unsynced writes), so strace watches the system calls
    instead; with ``synchronous=OFF`` or ``NORMAL`` no sync happens between the markers and the test fails.
    """
    n = 5
    with Project.create(tmp_path / "p") as project:
        project.add_items([tmp_path / f"img_{i}.png" for i in range(n)])
    trace = tmp_path / "trace.txt"
    done = subprocess.run(["strace", "-f", "-y", "-e", "trace=write,fsync,fdatasync", "-o", trace, sys.executable,
                           "-c", SYNCED_LABELLER, tmp_path / "p", str(n)], capture_output=True, text=True,
                          timeout=120)
    if "Operation not permitted" in done.stderr:
        pytest.skip("ptrace is not permitted here")
    assert done.returncode == 0, done.stderr
    wal = f"{(tmp_path / 'p' / DB_NAME).resolve()}-wal"
    synced, spans = False, []  # per set_label: was the WAL synced before it returned?
    for line in trace.read_text().splitlines():
        if "set_label called" in line:
            synced = False
        elif re.search(r"f(data)?sync\(\d+<" + re.escape(wal) + ">", line):
            synced = True
        elif "set_label returned" in line:
            spans.append(synced)
    assert spans == [True] * n


def _images(folder: Path, n: int) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(folder / f"{i:04d}.png")
    return folder


def _new_project(root: Path, images: Path) -> Path:
    with Project.create(root) as project:
        add_source(project, images)
    return root


def _resume(killed: Path, encoder, batch: int):
    """Run the extraction again on a killed project: (rows marked done at the kill, the report, all features)."""
    with Project.open(killed, writable=True) as project:
        done_at_kill = len(project.features_done(encoder_key(encoder)))
        report = extract_features(project, encoder, batch_size=batch, num_workers=0)
        assert (project.items()["status"] == "ok").all()
        return done_at_kill, report, load_features(project, report.encoder_key)


def _uninterrupted(root: Path, images: Path, batch: int) -> np.ndarray:
    """The features an extraction that nobody killed gives for ``images``."""
    encoder = FakeEncoder()
    with Project.open(_new_project(root, images), writable=True) as project:
        report = extract_features(project, encoder, batch_size=batch, num_workers=0)
        return load_features(project, report.encoder_key)


def test_extraction_killed_midway_resumes_with_unfinished_batches_only(tmp_path):
    n, batch = 400, 32
    images = _images(tmp_path / "images", n)
    killed = _new_project(tmp_path / "killed", images)
    lines = _kill_after(_start(EXTRACTOR, killed, 0.15, TESTS),
                        lambda lines: lines[-1].isdigit() and int(lines[-1]) >= 5 * batch)
    assert "finished" not in lines
    acknowledged = max(int(x) for x in lines if x.isdigit())  # rows reported as saved before the kill
    assert _integrity(killed) == "ok"

    rerun = FakeEncoder()
    done_at_kill, report, resumed = _resume(killed, rerun, batch)
    recomputed = rerun.encoded
    print(f"\nkilled after {acknowledged} acknowledged rows ({done_at_kill} marked done); "
          f"rerun recomputed {recomputed} of {n}, reused {report.reused}")
    assert acknowledged < n and recomputed == n - done_at_kill == report.computed
    assert recomputed <= batch + (n - acknowledged)
    assert report.reused == done_at_kill >= acknowledged

    reference = _uninterrupted(tmp_path / "clean", images, batch)
    assert resumed.shape == reference.shape == (n, rerun.dim)
    assert np.array_equal(resumed, reference)


SLOW_EXTRACTOR = """
import sys, time
sys.path.insert(0, sys.argv[3])
from hostile import FakeEncoder
from oddscope.core.project.features import FeatureStore
from oddscope.core.workflows.extraction import extract_features
from oddscope.core.project.store import Project

delay = float(sys.argv[2])
write_rows = FeatureStore.write_rows


def slow_disk(self, ids, rows):  # the kill may land before, during or after the rows are written
    time.sleep(delay)
    write_rows(self, ids, rows)


class Announcing(FakeEncoder):
    def encode(self, batch):
        print("batch", flush=True)
        return super().encode(batch)


FeatureStore.write_rows = slow_disk
project = Project.open(sys.argv[1], writable=True)
extract_features(project, Announcing(delay=delay), batch_size=int(sys.argv[4]), num_workers=0)
print("finished", flush=True)
"""


def test_extraction_killed_at_random_points_inside_a_batch_resumes_exactly(tmp_path):
    """Kills land anywhere in a batch (encoding, writing the rows, marking them done), not only between
    batches: a row marked done before it is on disk would come back as zeros after the resume."""
    n, batch, delay = 192, 16, 0.1
    images = _images(tmp_path / "images", n)
    killed = _new_project(tmp_path / "killed", images)
    rng = np.random.default_rng(7)
    for attempt, phase in enumerate(("encoding", "writing")):  # each takes `delay`; "batch" starts the first
        nth = int(rng.integers(2, 4))  # which batch of this run
        pause = ((phase == "writing") + rng.uniform(0.2, 0.8)) * delay  # a random point inside that phase
        lines = _kill_after(_start(SLOW_EXTRACTOR, killed, delay, TESTS, batch),
                            lambda lines: lines.count("batch") >= nth and time.sleep(pause) is None)
        assert "finished" not in lines, f"the kill while {phase} came too late"
        assert _integrity(killed) == "ok"

    done_at_kill, report, resumed = _resume(killed, FakeEncoder(), batch)
    assert 0 < done_at_kill < n and report.computed == n - done_at_kill
    reference = _uninterrupted(tmp_path / "clean", images, batch)
    assert np.array_equal(resumed, reference), "rows marked done hold other features than an uninterrupted run"


def test_feature_file_grows_keeping_every_row(tmp_path):
    images = _images(tmp_path / "images", 70)
    for i in (3, 4, 40):  # unreadable files between good ones: batches with gaps in their ids
        (images / f"{i:04d}_bad.png").write_bytes(b"not a png")
    more = _images(tmp_path / "more", 30)
    grown = _new_project(tmp_path / "grown", images)
    with Project.open(grown, writable=True) as project:
        first = extract_features(project, FakeEncoder(), batch_size=16, num_workers=0)
        add_source(project, more)
        second = extract_features(project, FakeEncoder(), batch_size=16, num_workers=0)
        assert (first.computed, second.computed, second.reused, len(first.skipped)) == (70, 30, 70, 3)
        features = load_features(project, first.encoder_key)
        assert project.features_done(first.encoder_key).tolist() == [
            i for i in range(103) if i not in (4, 6, 43)]
    assert [p.name for p in (grown / "features").iterdir()] == [f"{first.encoder_key}.npy"]
    clean = _new_project(tmp_path / "clean", images)
    with Project.open(clean, writable=True) as project:
        add_source(project, more)
        extract_features(project, FakeEncoder(), batch_size=100, num_workers=0)
        assert np.array_equal(features, load_features(project, first.encoder_key))
