"""What the window writes about one item, Qt-free: the viewer's fields, its label line and the map's caption."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from oddscope.app.ranking_table import SCORE_COLOURS, format_score
from oddscope.core.project.layout import detector_of
from oddscope.core.project.table import is_metadata


def viewer_fields(row: pd.Series, ranking: str) -> list[tuple[str, str]]:
    """(name, value) rows for the image viewer: rank and scores first, then metadata, the path last."""
    fields = [("Rank", f"#{int(row['rank'])}" if row["rank"] else "unranked"),
              (f"Anomaly score ({ranking})", format_score(row["anomaly_score"]))]
    if "predicted_relevance" in row:
        fields.append(("Predicted relevance", format_score(row["predicted_relevance"])))
    for column in row.index:
        if detector_of(column) is not None:
            fields.append((f"score: {detector_of(column)}", format_score(row[column])))
    if "cluster" in row:
        fields.append(("Cluster", str(row["cluster"]) if row["cluster"] >= 0 else "–"))
    reason = row["reason"]  # None, NaN or "" when the item was read
    fields.append(("Status", row["status"] + (f" ({reason})" if isinstance(reason, str) and reason else "")))
    for column in row.index:
        if is_metadata(column) and str(row[column]) not in ("nan", "None"):
            fields.append((column, str(row[column])))
    fields.append(("Path", row["path"]))
    return fields


def label_html(score: int | None, tags: list[str]) -> str:
    """The label line under the image: a score chip in its colour and the tags, or "unlabelled"."""
    parts = []
    if score is not None:
        parts.append(f"<span style='background:{SCORE_COLOURS[score]}; color:white;'>&nbsp;{score}&nbsp;</span>")
    parts += [f"<span style='color:#c9d1e0'>#{t}</span>" for t in tags]
    return " ".join(parts) if parts else "<span style='color:#6b7280'>unlabelled</span>"


def map_caption(row: pd.Series) -> str:
    """The map's hover caption: rank, anomaly score and file name."""
    return f"#{int(row['rank'])}  ·  {format_score(row['anomaly_score'])}  ·  {Path(row['path']).name}"
