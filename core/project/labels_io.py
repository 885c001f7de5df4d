"""Labels in and out of a project as CSV (columns ``path``, ``score`` and/or ``tags``).

Imports are forgiving about the file and strict about the values: every bad
row (unknown path, score outside 0-5, undecodable bytes, duplicate) is
reported with its line number, the good rows are applied in one transaction,
and nothing else in the project changes.  Paths are found by
:data:`~oddscope.core.project.csv_paths.PATH_RULE`, as for every CSV a user gives.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from oddscope.core.project.csv_paths import CsvPaths
from oddscope.core.project.store import Project, check_score, clean_tags


@dataclass
class ImportReport:
    applied: int = 0
    unchanged: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line number, message)
    paths: str = ""  # which base the relative paths matched against (CsvPaths.summary)
    nothing_matched: str | None = None  # the error when no row's path names an image of the project


def export_labels(project: Project, out) -> int:
    """Write every labelled item; returns the number of rows."""
    labels = project.labels()
    items = project.items(with_meta=False)
    with open(out, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "score", "tags", "who", "at"])
        for item_id, row in labels.iterrows():
            score = "" if row["score"] != row["score"] else int(row["score"])
            writer.writerow([str(project.resolve(items.at[item_id, "path"])), score, ";".join(row["tags"]),
                             row["who"], row["at"]])
    return len(labels)


def _decoded_lines(raw: bytes, report: ImportReport) -> list[str]:
    """Decode line by line so one badly encoded line costs only that line."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    lines = []
    for number, line in enumerate(raw.splitlines(keepends=True), start=1):
        try:
            lines.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            report.errors.append((number, "line is not UTF-8 text; save the file as UTF-8"))
            lines.append("\n")  # keep the line numbering
    return lines


def import_labels(project: Project, path, who: str | None = None) -> ImportReport:
    """Apply the labels in the CSV at ``path``; the report lists every rejected row with its line."""
    report = ImportReport()
    lines = _decoded_lines(Path(path).read_bytes(), report)
    reader = csv.DictReader(lines)  # one entry per physical line, so line numbers match the file
    fields = [f.strip().lower() for f in reader.fieldnames or []]
    reader.fieldnames = fields
    if "path" not in fields or not ({"score", "tags"} & set(fields)):
        raise ValueError(f"{path}: a labels CSV needs a 'path' column and a 'score' and/or 'tags' column "
                         f"(found: {', '.join(fields) or 'nothing'})")
    changes, seen, paths = [], {}, CsvPaths(project, path)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as err:  # e.g. a stray carriage return inside a cell
            report.errors.append((reader.line_num, f"malformed CSV row: {err}"))
            continue
        line = reader.line_num
        if not any((v or "").strip() for k, v in row.items() if k):
            continue  # blank or undecodable line (already reported)
        raw_path = (row.get("path") or "").strip()
        item_id = paths.item_id(raw_path) if raw_path else None
        if item_id is None:
            report.errors.append((line, f"unknown path {raw_path!r}" if raw_path else "empty path"))
            continue
        if item_id in seen:
            report.errors.append((line, f"duplicate of line {seen[item_id]} for {raw_path!r}; ignored"))
            continue
        try:
            score_text = (row.get("score") or "").strip()
            score = check_score(score_text) if score_text else ...
            tags_text = (row.get("tags") or "").strip()
            tags = clean_tags(tags_text) if tags_text else ...  # an empty cell keeps the current tags
        except ValueError as err:
            report.errors.append((line, str(err)))
            continue
        if score is ... and tags is ...:
            report.errors.append((line, "neither a score nor tags"))
            continue
        seen[item_id] = line
        changes.append((item_id, score, tags))
    report.applied = project.set_labels(changes, who=who) if changes else 0
    report.unchanged = len(changes) - report.applied
    report.paths, report.nothing_matched = paths.summary(), paths.nothing_matched()
    return report
