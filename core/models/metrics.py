"""How well a detector's scores find the labelled anomalies.

Used to compare detectors side by side once a user has labelled some images
(or on benchmarks with known anomalies).  AUROC summarises the whole ranking,
average precision rewards putting anomalies at the very top, and recall@k
answers the practical question "if I inspect the k highest-scoring images,
what fraction of the anomalies do I see?".
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score


def detection_metrics(scores, is_anomaly, ks=(10, 50, 100)) -> dict:
    """``{"auroc", "average_precision", "recall@k"...}`` for higher-is-anomalous scores.

    Items with a NaN score (skipped, e.g. unreadable images) are left out.
    ``k`` is clipped to the number of scored items; ties at the cut-off keep
    the earlier item.  A metric that is undefined (no anomalies, or no normal
    items for AUROC) is NaN rather than an error, so tables still render.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(is_anomaly).reshape(-1)
    if scores.shape != labels.shape:
        raise ValueError(f"scores ({scores.size}) and is_anomaly ({labels.size}) differ in length")
    if labels.dtype != bool and not np.isin(labels, (0, 1)).all():
        raise ValueError("is_anomaly must be boolean or 0/1")
    scored = ~np.isnan(scores)
    scores, labels = scores[scored], labels[scored].astype(bool)
    n_anomalies = int(labels.sum())
    both_classes = 0 < n_anomalies < labels.size
    result = {
        "auroc": float(roc_auc_score(labels, scores)) if both_classes else math.nan,
        "average_precision": float(average_precision_score(labels, scores)) if n_anomalies else math.nan,
    }
    ranking = np.argsort(-scores, kind="stable")
    for k in ks:
        top = ranking[: min(int(k), labels.size)]
        result[f"recall@{k}"] = float(labels[top].sum() / n_anomalies) if n_anomalies else math.nan
    return result


def metrics_table(results: dict) -> str:
    """Fixed-width text table: one row per detector (in the given order), one column per metric."""
    columns = []
    for metrics in results.values():
        columns += [c for c in metrics if c not in columns]
    name_width = max([len("detector")] + [len(str(name)) for name in results])
    widths = [max(len(c), 6) for c in columns]
    lines = ["  ".join([f"{'detector':<{name_width}}"] + [f"{c:>{w}}" for c, w in zip(columns, widths)])]
    for name, metrics in results.items():
        cells = [_format(metrics.get(c, math.nan)) for c in columns]
        lines.append("  ".join([f"{name:<{name_width}}"] + [f"{c:>{w}}" for c, w in zip(cells, widths)]))
    return "\n".join(lines)


def _format(value) -> str:
    if isinstance(value, (int, np.integer)):
        return str(value)
    return "-" if value is None or math.isnan(value) else f"{value:.3f}"
