"""The ranking grid's data, Qt-free: the table it shows, its filters and its text search.

Built for a million items: filters are whole-column numpy/pyarrow operations (a
text search over 1M paths takes ~0.15 s) and a cell's content is worked out
only when it is painted (:meth:`RankingTable.cell`).  :mod:`oddscope.app.ranking`
shows it; nothing here imports Qt, so it is tested and reused without a display.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from oddscope.core.project.table import is_metadata

# Label score 0 (normal) to 5 (most interesting): cool to hot.
SCORE_COLOURS = ("#6b7785", "#3d8bd4", "#26a69a", "#d4a82a", "#ee7d2b", "#e0483e")
LABEL_CHOICES = [("Any label", None), ("Unlabelled", "unlabelled"), ("Labelled", "labelled")] + [
    (f"Score \u2265 {n}", n) for n in range(1, 6)]


@dataclass
class Filters:
    """What the filter bar asks for; ``None`` (or empty text) means "no restriction"."""

    text: str = ""
    tag: str | None = None
    label: str | int | None = None  # "unlabelled", "labelled" or a minimum label score
    cluster: int | None = None
    score_min: float | None = None
    score_max: float | None = None
    selection: np.ndarray | None = None  # item ids

    def restricts(self) -> bool:
        """Whether any filter is set (without one, every row shows: no work to do)."""
        return bool(self.text.strip()) or any(value is not None for value in (
            self.tag, self.label, self.cluster, self.score_min, self.score_max, self.selection))


class Cell(NamedTuple):
    """What one grid cell shows."""

    item_id: int
    rank: int
    score: float
    label_score: float
    tags: tuple[str, ...]
    path: str


class RankingTable:
    """The columns the grid needs, as arrays, with vectorised filtering (no Qt here).

    Rows keep the table's order (the active ranking); a *position* is a row number.
    """

    def __init__(self, df: pd.DataFrame):
        if not pd.api.types.is_integer_dtype(df.index) or (len(df) and df.index.min() < 0):
            raise ValueError("the ranking table must be indexed by item ids (integers >= 0)")
        if "rank" in df and len(df):
            key = df["rank"].to_numpy(np.int64)
            key = np.where(key == 0, np.iinfo(np.int64).max, key)  # unranked last, as project_table does
            if np.any(np.diff(key) < 0):
                df = df.iloc[np.argsort(key, kind="stable")]
        n = len(df)
        self.ids = df.index.to_numpy(np.int64)
        self.rank = df["rank"].to_numpy(np.int64) if "rank" in df else np.arange(1, n + 1)
        self.score = _floats(df, "anomaly_score")
        self.label_score = _floats(df, "label_score")
        self.cluster = pd.to_numeric(df["cluster"]).fillna(-1).to_numpy(np.int64) if "cluster" in df else None
        self.paths = df["path"].astype("str").fillna("").array if "path" in df else None
        self.tags: dict[int, tuple[str, ...]] = {}
        self.has_tags = np.zeros(n, bool)
        if "tags" in df and n:
            for pos, text in zip(*_tagged(df["tags"])):
                self._set_tags(pos, text)
        # what the grid reads when a table is shown, worked out here (off the GUI thread at scale): at 5M items
        # each is a pass of 30-70 ms
        self.every_position = np.arange(n)  # the order with no filter
        self._pos_of = np.full(int(self.ids.max()) + 1 if n else 0, -1, np.int64)
        self._pos_of[self.ids] = self.every_position
        self._cluster_counts = _counts(self.cluster)
        finite = self.score[np.isfinite(self.score)]
        self.score_range = (float(finite.min()), float(finite.max())) if len(finite) else None
        self._text_columns = _search_columns(df)
        self._text: TextSearch | None = None  # built on the first text query: a re-sort then costs nothing

    def __len__(self) -> int:
        return len(self.ids)

    def positions(self, item_ids) -> np.ndarray:
        """Row of each item id; -1 for ids not in the table."""
        ids = np.asarray(item_ids, dtype=np.int64).ravel()
        known = (ids >= 0) & (ids < len(self._pos_of))
        out = np.full(len(ids), -1, np.int64)
        out[known] = self._pos_of[ids[known]]
        return out

    def all_tags(self) -> list[str]:
        return sorted({t for tags in self.tags.values() for t in tags}, key=str.lower)

    def cluster_counts(self) -> list[tuple[int, int]]:
        """``(cluster, items)`` for each cluster present, in cluster order (-1: no cluster)."""
        return self._cluster_counts

    def cell(self, pos: int) -> Cell:
        return Cell(int(self.ids[pos]), int(self.rank[pos]), float(self.score[pos]), float(self.label_score[pos]),
                    self.tags.get(pos, ()), "" if self.paths is None else self.paths[pos])

    def filter(self, f: Filters) -> np.ndarray:
        """Positions (in rank order) of the rows every active filter accepts."""
        n = len(self)
        masks = []
        text = f.text.strip()
        if text:
            if self._text is None:
                self._text = TextSearch(self._text_columns, n)
            masks.append(self._text.search(text))
        if f.tag is not None:
            tagged = np.zeros(n, bool)
            tagged[[pos for pos, tags in self.tags.items() if f.tag in tags]] = True
            masks.append(tagged)
        if f.label in ("labelled", "unlabelled"):
            labelled = np.isfinite(self.label_score) | self.has_tags
            masks.append(labelled if f.label == "labelled" else ~labelled)
        elif f.label is not None:
            masks.append(self.label_score >= float(f.label))  # NaN compares False
        if f.cluster is not None and self.cluster is not None:
            masks.append(self.cluster == f.cluster)
        if f.score_min is not None:
            masks.append(self.score >= f.score_min)
        if f.score_max is not None:
            masks.append(self.score <= f.score_max)
        if f.selection is not None:
            chosen = np.zeros(n, bool)
            pos = self.positions(f.selection)
            chosen[pos[pos >= 0]] = True
            masks.append(chosen)
        if not masks:
            return self.every_position
        return np.flatnonzero(np.logical_and.reduce(masks))

    def update_labels(self, labels: pd.DataFrame) -> np.ndarray:
        """Take new label scores/tags; returns the positions that changed.

        ``labels`` is indexed by item id (or has an ``item_id`` column) with a
        ``label_score`` (table style) or ``score`` (``Project.labels()`` style)
        column and/or ``tags`` (";"-joined text or a list).  NaN score and
        missing or empty tags mean "no label".
        """
        if "item_id" in labels.columns:
            labels = labels.set_index("item_id")
        pos = self.positions(labels.index.to_numpy())
        known = pos >= 0
        score_column = next((c for c in ("label_score", "score") if c in labels.columns), None)
        if score_column is not None:
            self.label_score[pos[known]] = pd.to_numeric(labels[score_column], errors="coerce").to_numpy(
                np.float64)[known]
        if "tags" in labels.columns:
            for p, tags in zip(pos[known].tolist(), labels["tags"].to_numpy(object)[known]):
                self._set_tags(p, tags)
        return pos[known]

    def _set_tags(self, pos: int, tags) -> None:
        if isinstance(tags, str):
            tags = tags.split(";")
        elif not isinstance(tags, (list, tuple, np.ndarray)):
            tags = ()  # NaN/None: no tags
        tags = tuple(t for t in (str(t).strip() for t in tags) if t)
        self.has_tags[pos] = bool(tags)
        if tags:
            self.tags[pos] = tags
        else:
            self.tags.pop(pos, None)


def _tagged(column: pd.Series) -> tuple[list[int], list[str]]:
    """Positions with tags and their ";"-joined text, without a Python step per row: few items have tags."""
    if isinstance(column.dtype, pd.CategoricalDtype):  # the app's table (app.table_state): through the categories
        texts = [str(t) for t in column.cat.categories]
        has_tags = np.array([bool(t) for t in texts] + [False])  # the last entry: code -1 (missing)
        codes = column.cat.codes.to_numpy()
        rows = np.flatnonzero(has_tags[codes])
        return rows.tolist(), [texts[c] for c in codes[rows].tolist()]
    tags = column.fillna("").to_numpy(object)
    rows = np.flatnonzero(tags.astype(bool))
    return rows.tolist(), tags[rows].tolist()


def _counts(cluster: np.ndarray | None) -> list[tuple[int, int]]:
    if cluster is None or not len(cluster):
        return []
    low = int(cluster.min())
    counts = np.bincount(cluster - low)
    present = np.flatnonzero(counts)
    return list(zip((present + low).tolist(), counts[present].tolist()))


def _floats(df: pd.DataFrame, column: str) -> np.ndarray:
    if column not in df:
        return np.full(len(df), np.nan)
    return pd.to_numeric(df[column], errors="coerce").to_numpy(np.float64, copy=True)


def _search_columns(df: pd.DataFrame) -> list[pd.Series]:
    """Path and the text metadata columns: what the text filter looks in."""
    return [df[c] for c in df.columns
            if c == "path" or (is_metadata(c) and (pd.api.types.is_string_dtype(df[c]) or df[c].dtype == object
                                                   or isinstance(df[c].dtype, pd.CategoricalDtype)))]


class TextSearch:
    """Case-insensitive substring search over text columns: ~0.1 s per million rows.

    A column with few distinct values (telescope, band...) is searched in its
    distinct values only.  Any other column is kept lower-cased as one UTF-8
    blob: one regex scan of the blob finds the hits, and their byte offsets
    map back to rows - no Python work per row.  When the hits are too many for
    that to pay off, Arrow's vectorised ``match_substring`` scans the rows.
    """

    def __init__(self, columns: list[pd.Series], n: int):
        self._n = n
        self._columns = [self._prepare(c) for c in columns]

    @staticmethod
    def _prepare(column: pd.Series):
        text = column.astype("str").fillna("")
        sample = text.iloc[:: max(1, len(text) // 4096)]
        if sample.nunique() * 8 < len(sample):
            codes, values = pd.factorize(text)
            return codes, [str(v).lower() for v in values]
        low = pc.utf8_lower(pa.array(text.array)).cast(pa.large_string())
        if isinstance(low, pa.ChunkedArray):
            low = low.combine_chunks()
        offsets = np.frombuffer(low.buffers()[1], np.int64)[low.offset:low.offset + len(low) + 1]
        return low, offsets

    def search(self, text: str) -> np.ndarray:
        """Boolean mask of the rows where any column contains ``text`` (ignoring case)."""
        query = text.lower()
        mask = np.zeros(self._n, bool)
        for first, second in self._columns:
            if isinstance(second, list):  # distinct values: codes, values
                mask |= np.array([query in v for v in second] + [False])[first]  # code -1 (none) -> False
            else:
                mask |= self._search_blob(first, second, query)
        return mask

    def _search_blob(self, low: pa.Array, offsets: np.ndarray, query: str) -> np.ndarray:
        needle = query.encode()
        data = low.buffers()[2]
        mask = np.zeros(self._n, bool)
        if data is None:  # every value empty
            return mask
        cap = max(1000, self._n // 8)
        hits = re.compile(re.escape(needle)).finditer(memoryview(data))
        starts = np.fromiter(itertools.islice((m.start() for m in hits), cap + 1), np.int64)
        if len(starts) > cap:  # a common substring: a per-row scan is cheaper than a Python step per hit
            return pc.match_substring(low, query).to_numpy(zero_copy_only=False)
        row = np.searchsorted(offsets, starts, "right") - 1
        inside = row == np.searchsorted(offsets, starts + len(needle) - 1, "right") - 1  # not across two rows
        mask[row[inside]] = True
        return mask


def format_score(value: float) -> str:
    """Three significant digits; an en dash for "no score"."""
    return "\u2013" if not np.isfinite(value) else f"{value:.3g}"


def tag_initials(tag: str) -> str:
    """``strong lens`` -> ``SL``, ``merger`` -> ``Me``: short enough for a badge, still tellable apart."""
    words = tag.replace("_", " ").replace("-", " ").split()
    if len(words) > 1:
        return "".join(w[0] for w in words[:2]).upper()
    return tag[:2].capitalize()
