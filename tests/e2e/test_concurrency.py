"""One writer at a time, refused clearly; readers (read-only projects, `oddscope export`) work meanwhile."""

import os
import subprocess
import sys

import pandas as pd
import pytest
from click.testing import CliRunner

from oddscope.app.cli import main
from oddscope.core.project.store import Project, ProjectLocked

N_ITEMS = 30

# Labels items one by one, acknowledging each, then holds the project until stdin closes.
WRITER = """
import sys
from oddscope.core.project.store import Project

with Project.open(sys.argv[1], writable=True) as project:
    print("open", flush=True)
    for item_id in range(int(sys.argv[2])):
        sys.stdin.readline()  # the test says when to write the next label
        project.set_label(item_id, score=item_id % 6)
        print(item_id, flush=True)
    sys.stdin.read()
"""

SECOND_WRITER = """
import sys
from oddscope.core.project.store import Project, ProjectLocked

try:
    Project.open(sys.argv[1], writable=True)
except ProjectLocked as err:
    print(err)
    sys.exit(3)
"""


@pytest.fixture
def project_dir(tmp_path):
    with Project.create(tmp_path / "p") as project:
        project.add_items([tmp_path / "images" / f"{i}.png" for i in range(N_ITEMS)])
    (tmp_path / "labels.csv").write_text(f"path,score\n{tmp_path / 'images' / '0.png'},5\n")
    return tmp_path / "p"


def test_second_writer_is_refused_in_process_and_from_another_process(project_dir):
    expected = f"open for writing by pid {os.getpid()}"
    with Project.open(project_dir, writable=True) as writer:
        with pytest.raises(ProjectLocked, match=expected):
            Project.open(project_dir, writable=True)
        other = subprocess.run([sys.executable, "-c", SECOND_WRITER, str(project_dir)], capture_output=True,
                               text=True, timeout=120)
        assert other.returncode == 3 and expected in other.stdout and "read-only" in other.stdout
        cli = subprocess.run([sys.executable, "-m", "oddscope.core.cli", "labels", "import", "-p", str(project_dir),
                              str(project_dir.parent / "labels.csv")], capture_output=True, text=True, timeout=120)
        assert cli.returncode == 1 and expected in cli.stderr and "Traceback" not in cli.stderr
        writer.set_label(1, score=2)  # the refusals changed nothing for the writer
    Project.open(project_dir, writable=True).close()  # free again once the writer closed


def test_readers_see_each_label_while_another_process_writes(project_dir, tmp_path):
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(project_dir), str(N_ITEMS)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "open"
        with Project.open(project_dir) as reader:  # opened while the writer holds the project
            for item_id in range(N_ITEMS):
                writer.stdin.write("\n")
                writer.stdin.flush()
                assert writer.stdout.readline().strip() == str(item_id)
                assert reader.label(item_id) == (item_id % 6, [])  # committed means visible, at once
                if item_id in (0, N_ITEMS // 2):
                    out = tmp_path / f"export_{item_id}.csv"
                    result = CliRunner().invoke(main, ["export", "-p", str(project_dir), "--out", str(out)])
                    assert result.exit_code == 0, result.output
                    table = pd.read_csv(out)
                    assert table["label_score"].notna().sum() == item_id + 1 and len(table) == N_ITEMS
            assert len(reader.labels()) == N_ITEMS
        refused = CliRunner().invoke(main, ["rank", "-p", str(project_dir), "knn"])
        assert refused.exit_code == 1 and f"open for writing by pid {writer.pid}" in refused.output
    finally:
        writer.stdin.close()
        writer.wait(timeout=60)
    assert writer.returncode == 0, writer.stderr.read()
    with Project.open(project_dir, writable=True) as project:  # released on exit
        assert len(project.labels()) == N_ITEMS
