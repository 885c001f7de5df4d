"""Measuring guidance: for the raw features and each guided space, how much of the nuisance is left
(invariance), how well the true anomalies are still found (informativeness), and how many nuisance-only
outliers still crowd the top of the ranking.  What ``oddscope evaluate guidance`` prints."""

from __future__ import annotations

import numpy as np

from oddscope.core.models.guidance.probes import probe_nuisance
from oddscope.core.models.metrics import detection_metrics
from oddscope.core.project.layout import RAW_SPACE, score_array, space_name
from oddscope.core.project.store import Project
from oddscope.core.workflows.evaluate import anomaly_flag, read_truth
from oddscope.core.workflows.guidance import analysed_ids, attribute_values
from oddscope.core.workflows.spaces import space_features, spaces

NUISANCE_OUTLIER = "nuisance_outlier"  # the truth category of items unusual only in a nuisance attribute
TOP = 50


def evaluate_guidance(project: Project, truth_csv, nuisance: str, detector: str = "knn",
                      threshold: float | None = None, top: int = TOP, nonlinear: bool = True) -> dict:
    """``{"spaces": {"raw": {...}, "<space>": {...}}, ...}``, each with ``probe_linear``, ``probe_nonlinear``,
    ``probe_chance`` (accuracy, or R^2 for a continuous nuisance), ``auroc`` and ``ap`` of ``detector`` in the
    space, and ``nuisance_outliers_top50``: the share of the top ``top`` that the truth calls
    ``nuisance_outlier`` (None when it calls nothing so), plus the nuisance values counted in that top.
    """
    truth = read_truth(project, truth_csv, parse=lambda text: anomaly_flag(text, threshold))
    test_ids, _ = analysed_ids(project)
    values, source = attribute_values(project, nuisance, test_ids)
    known = np.array([v is not None for v in values])
    outlier_ids = set(truth["ids"][truth["categories"] == NUISANCE_OUTLIER].tolist())
    result = {"nuisance": nuisance, "source": source, "detector": detector, "n_items": int(len(truth["ids"])),
              "n_anomalies": int((truth["values"] > 0).sum()), "n_nuisance_outliers": len(outlier_ids),
              "unknown_paths": len(truth["unknown"]), "paths": truth["paths"], "spaces": {}}
    value_of = dict(zip(test_ids.tolist(), values))
    for space in [None, *spaces(project)]:
        scores = project.load_array(score_array(space_name(detector, space)))
        if scores is None:
            raise ValueError(f"no scores of detector {detector!r} in space {space or RAW_SPACE!r}")
        probes = probe_nuisance(space_features(project, test_ids[known], space), values[known], nonlinear=nonlinear)
        metrics = detection_metrics(scores[truth["ids"]], truth["values"] > 0, ks=())
        ranked = test_ids[np.argsort(-np.nan_to_num(scores[test_ids], nan=-np.inf), kind="stable")[:top]]
        counts: dict = {}
        for item_id in ranked.tolist():
            key = str(value_of.get(item_id))
            counts[key] = counts.get(key, 0) + 1
        result["spaces"][space or RAW_SPACE] = {
            "probe_linear": probes["probe_linear"], "probe_nonlinear": probes["probe_nonlinear"],
            "probe_chance": probes["probe_chance"], "probe_kind": probes["kind"],
            "auroc": metrics["auroc"], "ap": metrics["average_precision"],
            "nuisance_outliers_top50": (sum(i in outlier_ids for i in ranked.tolist()) / len(ranked)
                                        if outlier_ids else None),
            "top50_nuisance_values": counts}
    return result


def guidance_table(result: dict) -> str:
    """The result as a plain-text table, one row per space."""
    lines = [f"{'space':<16}{'probe lin':>10}{'probe MLP':>10}{'chance':>8}{'AUROC':>8}{'AP':>8}{'nuis@50':>9}"]
    for name, row in result["spaces"].items():
        cells = [row["probe_linear"], row["probe_nonlinear"], row["probe_chance"], row["auroc"], row["ap"]]
        text = "".join(f"{'-' if v is None else f'{v:.3f}':>{w}}" for v, w in zip(cells, (10, 10, 8, 8, 8)))
        share = row["nuisance_outliers_top50"]
        lines.append(f"{name[:15]:<16}{text}{'-' if share is None else f'{share:.2f}':>9}")
    return "\n".join(lines)
