"""One row per item with everything known about it: the view behind export and the app.

The active ranking is a project setting naming either a detector (``knn``,
``iforest``, ...) or an active-learning method whose scores were stored as
``rank_<method>``; ``anomaly_score`` and ``rank`` always follow it.

Every other column is computed here too, except the items' metadata (from a
manifest or the ingest): :func:`is_metadata` is the one rule telling them apart,
for the export, the map's colourings, the viewer's fields and the text filter.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from oddscope.core.progress import as_progress
from oddscope.core.project.layout import (
    CLUSTER_ARRAYS,
    CLUSTER_PREFIX,
    MAP_ARRAY,
    RANKING,
    SCORE_PREFIX,
    detector_of,
    rank_array,
    relevance_array,
    score_array,
)
from oddscope.core.project.store import ITEM_COLUMNS, Project

# The columns project_table computes besides one per detector (score_<name>) and per clusterer.
COMPUTED_COLUMNS = frozenset({*ITEM_COLUMNS, "rank", "anomaly_score", "predicted_relevance", "umap_x", "umap_y",
                              "cluster", "label_score", "tags"})


def is_metadata(column) -> bool:
    """Whether a project-table column holds the items' own metadata rather than something computed.

    Metadata whose name would read as computed is renamed ``meta_<name>`` by :func:`project_table`,
    so this rule never misfiles a column.
    """
    column = str(column)
    return column not in COMPUTED_COLUMNS and not column.startswith((SCORE_PREFIX, CLUSTER_PREFIX))


def detector_names(project: Project) -> list[str]:
    return [name for name in map(detector_of, project.array_names()) if name is not None]


def ranking_name(project: Project) -> str:
    return RANKING.read(project)


def ranking_scores(project: Project, name: str | None = None, mmap: bool = False) -> np.ndarray:
    """Per-item scores of a ranking (higher first); NaN for items outside it.  ``mmap``: the stored array
    memory-mapped, as it is (float32), read only when used - at once, not a pass over every item."""
    name = name or ranking_name(project)
    for array in (rank_array(name), score_array(name)):
        values = project.load_array(array, mmap=mmap)
        if values is not None:
            return values if mmap else values.astype(np.float64)
    raise KeyError(f"no ranking {name!r} in {project.root}; known: {', '.join(detector_names(project))}")


def rank_of(scores: np.ndarray) -> np.ndarray:
    """1-based rank per item (1 = most anomalous); 0 where the score is NaN."""
    order = np.argsort(-np.nan_to_num(scores, nan=-np.inf), kind="stable")
    ranks = np.empty(len(scores), dtype=np.int64)
    ranks[order] = np.arange(1, len(scores) + 1)
    ranks[np.isnan(scores)] = 0
    return ranks


def read_project_table(root, progress=None) -> pd.DataFrame:
    """:func:`project_table` of the project at ``root`` through a read-only connection of its own:
    for worker threads and child processes (a sqlite3 connection must not serve two threads at once)."""
    progress = as_progress(progress)
    progress.update("reading the project", 0, 1)
    with Project.open(root) as project:
        table = project_table(project)
    progress.update("reading the project", 1, 1)
    return table


def project_table(project: Project, roles=("test",), absolute_paths: bool = True,
                  ranking: str | None = None) -> pd.DataFrame:
    """The export table, sorted by the active ranking (unranked items last), or by ``ranking`` when given
    (any name :func:`ranking_scores` knows, e.g. ``knn@<space>`` for a guided feature space)."""
    ranking = ranking or ranking_name(project)
    items = project.items()
    df = pd.DataFrame(index=items.index.astype(np.int64))  # (SQL gives an empty project no integer index)
    df.index.name = "item_id"
    df["path"] = (pd.array(project.resolved_paths(items["path"]).cast(pa.string()), dtype="str") if absolute_paths
                  else list(items["path"]))
    df["status"] = items["status"]
    df["reason"] = items["reason"]
    df["role"] = items["role"]
    scores = _padded(ranking_scores(project, ranking) if detector_names(project) else None, len(df))
    df["rank"] = rank_of(scores)
    df["anomaly_score"] = scores
    for name in detector_names(project):
        df[score_array(name)] = _padded(project.load_array(score_array(name)), len(df))
    rel = project.load_array(relevance_array(ranking))
    if rel is not None:
        df["predicted_relevance"] = _padded(rel, len(df))
    umap = project.load_array(MAP_ARRAY)
    df["umap_x"] = _padded(None if umap is None else umap[:, 0], len(df))
    df["umap_y"] = _padded(None if umap is None else umap[:, 1], len(df))
    for column in CLUSTER_ARRAYS:  # each cluster array is a column of its own name
        values = project.load_array(column)
        if values is not None:
            df[column] = _padded(values, len(df), fill=-1).astype(np.int64)
    if "cluster_kmeans" in df:
        df["cluster"] = df["cluster_kmeans"]
    labels = project.labels()
    df["label_score"] = labels["score"].reindex(df.index)
    df["tags"] = [";".join(t) if isinstance(t, list) else "" for t in labels["tags"].reindex(df.index)]
    meta = items.drop(columns=list(ITEM_COLUMNS))
    df = df.join(meta.rename(columns={c: f"meta_{c}" for c in meta.columns if not is_metadata(c)}))
    if roles:
        df = df[df["role"].isin(roles)]
    return df.sort_values(["rank"], key=lambda r: r.replace(0, np.iinfo(np.int64).max), kind="stable")


def _padded(values, n: int, fill=np.nan) -> np.ndarray:
    out = np.full(n, fill, dtype=np.float64)
    if values is not None:
        values = np.asarray(values)
        out[: min(n, len(values))] = values[:n]
    return out


def export_table(project: Project, out, ranking: str | None = None) -> Path:
    """Write the table to ``.csv`` or ``.parquet`` (by extension), ranked by ``ranking`` (default: the active one)."""
    out = Path(out)
    df = project_table(project, ranking=ranking).reset_index()
    if out.suffix.lower() == ".parquet":
        df.to_parquet(out, index=False)
    elif out.suffix.lower() == ".csv":
        df.to_csv(out, index=False)
    else:
        raise ValueError(f"export to .csv or .parquet, not {out.suffix or 'no extension'}")
    return out
