"""The project table with everything the views derive from it, built in one go - off the GUI thread at scale.

At millions of items each derived piece (the grid's arrays, the map's point order
and coordinates, the status counts, pandas' id lookup) takes a sizeable fraction
of a second, and a re-sort of the table itself (a new ranking, a refit of the
active learner) takes seconds.  :func:`table_state` and :func:`reranked` are
plain functions with no Qt, so :class:`~oddscope.app.model.ProjectModel` runs
them in a worker thread and swaps the finished :class:`TableState` in at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from oddscope.app.map_render import MapPoints, map_points
from oddscope.app.ranking_table import RankingTable
from oddscope.core.project.table import rank_of, read_project_table

# Text columns with few distinct values, held as categoricals: a Python string per row made every pass over them
# (take, isna, pickling) hold the GIL for up to a second at 5M items, and a label wrote the tags in place anyway
CATEGORY_COLUMNS = ("status", "role", "reason", "tags")


@dataclass(frozen=True)
class TableState:
    """A table (index item id, in ranking order) and what the views read from it."""

    table: pd.DataFrame
    grid: RankingTable  # the ranking grid's arrays, in the table's order
    map_ids: np.ndarray  # items on the map, in map point order (id order)
    map_rows: np.ndarray  # their rows in ``table``
    map_pos: np.ndarray  # item id -> map position (-1: not on the map)
    xy: np.ndarray  # (n points, 2) float32 map coordinates, in map point order
    points: MapPoints  # the same, as the map view takes them
    n_ok: int  # items whose status is "ok"
    n_ranked: int  # items with a rank (none: the project was never analysed)

    @property
    def n_items(self) -> int:
        return len(self.table)


def table_state(table: pd.DataFrame, space_map: np.ndarray | None = None, showing: TableState | None = None,
                progress=None) -> TableState:
    """Everything the views derive from ``table``: O(n), no sort (item ids are row numbers).
    ``space_map`` (x, y per item id) is the map of the feature space in use (None: the table's own map).
    ``showing``: the state the views show now; when the map's points are the same (a re-sort), its arrays are
    kept, so the map view sees the very same points and does nothing.
    ``progress`` (a worker task's) is unused: this takes well under the time a progress bar is for."""
    table = with_view_dtypes(table)
    ids = table.index.to_numpy()
    coordinates = (table[["umap_x", "umap_y"]].to_numpy(np.float32) if space_map is None
                   else np.asarray(space_map, np.float32)[ids])
    on_map = np.isfinite(coordinates).all(axis=1)
    size = int(ids.max()) + 1 if len(table) else 0
    row_of = np.full(size, -1, np.int64)
    row_of[ids] = np.arange(len(ids))
    shown = np.zeros(size, bool)
    shown[ids[on_map]] = True
    map_ids = np.flatnonzero(shown)
    map_rows = row_of[map_ids]
    map_pos = np.full(size, -1, np.int64)
    map_pos[map_ids] = np.arange(len(map_ids))
    xy = coordinates[map_rows]
    if len(ids):
        table.index.get_loc(ids[0])  # builds pandas' id lookup here, not on the GUI thread at a first click
    n_ok = int((table["status"] == "ok").sum()) if "status" in table else len(table)
    n_ranked = int(np.count_nonzero(table["rank"].to_numpy() > 0)) if "rank" in table else 0
    if showing is not None and np.array_equal(showing.xy, xy):
        xy, points = showing.xy, showing.points
    else:
        points = map_points(xy)
    return TableState(table, RankingTable(table), map_ids, map_rows, map_pos, xy, points, n_ok, n_ranked)


def with_view_dtypes(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with its :data:`CATEGORY_COLUMNS` as categoricals (the same table when they already are)."""
    convert = {c: "category" for c in CATEGORY_COLUMNS
               if c in table and not isinstance(table[c].dtype, pd.CategoricalDtype)}
    return table.astype(convert) if convert else table


def load_table(root, progress=None) -> pd.DataFrame:
    """Task: the project table at ``root`` in the views' dtypes.  At scale it runs in a child process, so the
    conversion holds the child's GIL, not the window's."""
    return with_view_dtypes(read_project_table(root, progress))


def write_tags(table: pd.DataFrame, item_ids, texts) -> None:
    """Set the ";"-joined ``texts`` of ``item_ids`` in ``table`` in place (a categorical learns new texts first:
    that copies its codes, a byte per item)."""
    texts = [str(t) for t in texts]
    column = table["tags"]
    if isinstance(column.dtype, pd.CategoricalDtype):
        new = [t for t in dict.fromkeys(texts) if t not in column.cat.categories]
        if new:
            table["tags"] = column.cat.add_categories(new)
    table.loc[np.asarray(item_ids, np.int64), "tags"] = texts


def reranked(table: pd.DataFrame, scores: np.ndarray, relevance: np.ndarray | None) -> pd.DataFrame:
    """``table`` re-ranked by per-item ``scores`` (higher first) and sorted by the new rank, unranked last
    in their present order; ``relevance`` (per item, or None) becomes ``predicted_relevance``."""
    table = table.copy(deep=False)  # copy-on-write: the caller's table is left as it was
    padded = np.full(int(table.index.max()) + 1, np.nan)
    padded[: len(scores)] = scores[: len(padded)]
    ranks = rank_of(padded)
    ids = table.index.to_numpy()
    key = ranks[ids]
    table["anomaly_score"] = padded[ids]
    table["rank"] = key
    if relevance is not None:
        table["predicted_relevance"] = np.asarray(relevance, np.float64)[ids]
    # rows by rank, unranked (0) last in their present order: ranks are distinct, so a scatter sorts them
    slot = np.full(len(padded) + 1, -1, np.int64)
    ranked = np.flatnonzero(key > 0)
    slot[key[ranked]] = ranked
    order = np.concatenate([slot[slot >= 0], np.flatnonzero(key == 0)])
    return table.iloc[order]


def reranked_state(table: pd.DataFrame, scores: np.ndarray, relevance: np.ndarray | None,
                   space_map: np.ndarray | None = None, showing: TableState | None = None,
                   progress=None) -> TableState:
    """:func:`table_state` of :func:`reranked` (one worker task; ``progress`` is the task's, unused)."""
    return table_state(reranked(table, scores, relevance), space_map, showing)
