"""Label CSV import/export: bad rows reported by line, good rows applied, nothing else changed."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oddscope.core.project.labels_io import export_labels, import_labels
from oddscope.core.project.store import Project


@pytest.fixture
def project(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    paths = [images / f"img_{i}.png" for i in range(5)]
    for p in paths:
        p.write_bytes(b"x")
    with Project.create(tmp_path / "proj") as proj:
        proj.add_items(paths)
        yield proj


def test_round_trip(project, tmp_path):
    project.set_label(1, score=4, tags=["ring", "blue"])
    project.set_label(3, score=0)
    out = tmp_path / "labels.csv"
    assert export_labels(project, out) == 2
    project.undo(), project.undo()
    report = import_labels(project, out)
    assert report.applied == 2 and not report.errors
    assert project.label(1) == (4, ["ring", "blue"]) and project.label(3) == (0, [])


def test_bad_rows_are_reported_with_line_numbers(project, tmp_path):
    images = project.root.parent / "images"
    csv = tmp_path / "in.csv"
    csv.write_bytes(
        b"path,score,tags\n"
        + f"{images / 'img_0.png'},5,ring\n".encode()        # line 2: good
        + b"/nowhere/x.png,3,\n"                               # line 3: unknown path
        + f"{images / 'img_1.png'},9,\n".encode()            # line 4: bad score
        + f"{images / 'img_0.png'},1,\n".encode()            # line 5: duplicate
        + b"\xff\xfe bad bytes,2,\n"                           # line 6: not UTF-8
        + f"{images / 'img_2.png'},,artefact\n".encode()     # line 7: tags only
    )
    report = import_labels(project, csv)
    lines = {line: msg for line, msg in report.errors}
    assert set(lines) == {3, 4, 5, 6}
    assert "unknown path" in lines[3] and "0-5" in lines[4] and "duplicate of line 2" in lines[5]
    assert "UTF-8" in lines[6]
    assert report.applied == 2
    assert project.label(0) == (5, ["ring"]) and project.label(2) == (None, ["artefact"])
    assert project.label(1) == (None, [])


def test_missing_columns_is_a_clear_error(project, tmp_path):
    (tmp_path / "x.csv").write_text("file,rating\na,1\n")
    with pytest.raises(ValueError, match="'path' column"):
        import_labels(project, tmp_path / "x.csv")


rows = st.lists(st.tuples(st.integers(0, 7),  # 5, 6, 7: paths unknown to the project
                          st.one_of(st.integers(-2, 8), st.just(""), st.text(max_size=3)),
                          st.sampled_from(["", "a", "b;c"])), max_size=12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=rows)
def test_property_good_rows_applied_bad_rows_reported_nothing_else_changed(project, tmp_path, rows):
    images = project.root.parent / "images"
    before = {i: project.label(i) for i in range(5)}
    lines = ["path,score,tags"] + [f"{images / f'img_{i}.png'},{s},{t}" for i, s, t in rows]
    csv = tmp_path / "prop.csv"
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = import_labels(project, csv)
    bad = {line for line, _ in report.errors}
    seen = set()
    reshaped = any(ch in str(s) for _, s, _ in rows for ch in ',"\r\n')  # the cell changes the CSV's shape
    for number, (i, s, t) in enumerate([] if reshaped else rows, start=2):
        text = str(s).strip()
        valid_score = text == "" or (text.lstrip("-").isdecimal() and 0 <= int(text) <= 5)  # "²" is a digit, no number
        usable = i < 5 and i not in seen and valid_score and (text != "" or t != "")
        if i < 5 and valid_score and (text or t):
            seen.add(i)
        assert (number in bad) != usable, (number, i, s, t, report.errors)
    touched = {i for i, s, t in rows if i < 5}
    for i in set(range(5)) - touched:
        assert project.label(i) == before[i]
    project.set_labels([(i, None, []) for i in range(5)])
