"""Measuring detection quality against a truth file (``path,is_anomaly[,category]``)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from oddscope.core.models.metrics import detection_metrics
from oddscope.core.project.layout import score_array
from oddscope.core.project.store import Project
from oddscope.core.project.table import detector_names, ranking_name, ranking_scores


def read_truth(project: Project, truth_csv, column: str = "is_anomaly") -> dict:
    """Truth per item: ``{"ids", "values", "categories", "unknown"}``; relative paths are relative to the CSV."""
    truth_csv = Path(truth_csv)
    ids, values, categories, unknown = [], [], [], []
    with open(truth_csv, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or "path" not in reader.fieldnames or column not in reader.fieldnames:
            raise ValueError(f"{truth_csv} needs columns 'path' and '{column}' (found: {reader.fieldnames})")
        for row in reader:
            path = Path(row["path"])
            item_id = project.item_id(path if path.is_absolute() else truth_csv.parent / path)
            if item_id is None:
                unknown.append(row["path"])
                continue
            ids.append(item_id)
            values.append(float(row[column]))
            categories.append(row.get("category") or "")
    return {"ids": np.array(ids, dtype=np.int64), "values": np.array(values), "categories": np.array(categories),
            "unknown": unknown}


def evaluate_detectors(project: Project, truth_csv, ks=(10, 50, 100)) -> dict:
    """AUROC, average precision and recall@k of every detector (and of the active ranking)."""
    truth = read_truth(project, truth_csv)
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
            "active_ranking": active, "detectors": results, "auroc_by_category": per_category}
