"""Measuring detection quality against a truth file (``path,is_anomaly[,category]``).

Truth is strict: ``is_anomaly`` is 0/1, true/false or yes/no, and a probability
counts only with an explicit threshold, since silently reading every value above
0 as an anomaly makes the metrics meaningless.  A bad value is reported with its
line; paths are found by :data:`~oddscope.core.project.csv_paths.PATH_RULE`.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from oddscope.core.models.metrics import detection_metrics
from oddscope.core.project.csv_paths import CsvPaths
from oddscope.core.project.layout import score_array
from oddscope.core.project.store import Project
from oddscope.core.project.table import detector_names, ranking_name, ranking_scores

_FLAGS = {"1": 1.0, "true": 1.0, "yes": 1.0, "0": 0.0, "false": 0.0, "no": 0.0}
MAX_REPORTED = 10  # bad lines listed in the error


def anomaly_flag(text: str, threshold: float | None = None) -> float:
    """1.0 or 0.0 from ``is_anomaly`` text: 0/1, true/false, yes/no; with ``threshold``, a number at or
    above it is an anomaly (for probabilities)."""
    text = (text or "").strip()
    if threshold is not None:
        return float(_number(text) >= threshold)
    flag = _FLAGS.get(text.lower())
    if flag is None:
        try:
            flag = {0.0: 0.0, 1.0: 1.0}.get(float(text))  # "1.0" is a flag too
        except ValueError:
            pass
    if flag is None:
        raise ValueError(f"is_anomaly must be 0/1, true/false or yes/no, not {text!r}; for probabilities or "
                         f"scores give a threshold (--threshold)")
    return flag


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"expected a number, not {text!r}") from None


def read_truth(project: Project, truth_csv, column: str = "is_anomaly", parse=None) -> dict:
    """Truth per item: ``{"ids", "values", "categories", "unknown", "paths"}``.

    ``parse`` turns a cell of ``column`` into a number (default: a plain number); every line it refuses
    is reported in one error, with its line number.  A file of which no path names an image is an error.
    """
    truth_csv = Path(truth_csv)
    parse = parse or _number
    ids, values, categories, unknown, bad = [], [], [], [], []
    paths = CsvPaths(project, truth_csv)
    with open(truth_csv, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or "path" not in reader.fieldnames or column not in reader.fieldnames:
            raise ValueError(f"{truth_csv} needs columns 'path' and '{column}' (found: {reader.fieldnames})")
        for row in reader:
            line = reader.line_num
            item_id = paths.item_id((row["path"] or "").strip())
            if item_id is None:
                unknown.append(row["path"])
                continue
            try:
                values.append(parse(row[column]))
            except ValueError as err:
                bad.append(f"line {line}: {err}")
                continue
            ids.append(item_id)
            categories.append(row.get("category") or "")
    if bad:
        more = f"\n  ... and {len(bad) - MAX_REPORTED} more" if len(bad) > MAX_REPORTED else ""
        raise ValueError(f"{truth_csv}: {len(bad)} bad '{column}' value(s):\n  "
                         + "\n  ".join(bad[:MAX_REPORTED]) + more)
    if paths.nothing_matched():
        raise ValueError(paths.nothing_matched())
    return {"ids": np.array(ids, dtype=np.int64), "values": np.array(values), "categories": np.array(categories),
            "unknown": unknown, "paths": paths.summary()}


def evaluate_detectors(project: Project, truth_csv, ks=(10, 50, 100), threshold: float | None = None) -> dict:
    """AUROC, average precision and recall@k of every detector (and of the active ranking).

    ``threshold``: ``is_anomaly`` holds probabilities or scores; at or above it counts as an anomaly.
    """
    truth = read_truth(project, truth_csv, parse=lambda text: anomaly_flag(text, threshold))
    ids, is_anomaly = truth["ids"], truth["values"] > 0
    names = detector_names(project)
    active = ranking_name(project)
    rankings = {name: project.load_array(score_array(name)) for name in names}
    if active not in rankings:
        rankings[f"ranking:{active}"] = ranking_scores(project, active)
    results, per_category = {}, {}
    normal = ~is_anomaly
    for name, scores in rankings.items():
        s = scores[ids].astype(np.float64)
        results[name] = detection_metrics(s, is_anomaly, ks=ks)
        per_category[name] = {
            cat: detection_metrics(s[normal | (truth["categories"] == cat)],
                                   is_anomaly[normal | (truth["categories"] == cat)], ks=())["auroc"]
            for cat in sorted(set(truth["categories"][is_anomaly]) - {""})}
    return {"n_items": int(len(ids)), "n_anomalies": int(is_anomaly.sum()), "unknown_paths": len(truth["unknown"]),
            "paths": truth["paths"], "active_ranking": active, "detectors": results,
            "auroc_by_category": per_category}
