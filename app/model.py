"""The open project as the views see it: one table, the current item, the shared selection.

Every view (map, ranking grid, viewer, neighbours) reads this model and asks it
to change things, so a label given in the grid shows at once in the viewer and
on the map.  Labels are written through the store first (durable when the call
returns), then only the touched rows of the in-memory table are updated: cheap
at a million rows, where rebuilding the table would take seconds.

At survey scale (:data:`ASYNC_ITEMS` and more) a new table - opened, re-analysed
or re-sorted by another ranking - is prepared in a worker thread
(:mod:`oddscope.app.table_state`) and swapped in when ready; meanwhile the views
keep showing the previous one and :attr:`ProjectModel.busy` is True.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from PySide6.QtCore import QObject, Signal

from oddscope.app.table_state import TableState, load_table, reranked_state, table_state, write_tags
from oddscope.app.worker import Lane, Task
from oddscope.core.data.science import NONE
from oddscope.core.models.registry import RANKERS
from oddscope.core.project.layout import (
    CLUSTER_ARRAYS,
    CLUSTER_PREFIX,
    ENCODER,
    PREPROCESS,
    RANKING,
    relevance_array,
    score_array,
)
from oddscope.core.project.store import Project, ProjectError, ProjectLocked
from oddscope.core.project.table import (
    detector_names,
    is_metadata,
    ranking_name,
    ranking_scores,
)

# Tables of this many items and more are prepared and re-sorted in a worker (below: at once, a few ms)
ASYNC_ITEMS = 50_000
MAX_CATEGORIES = 60  # a text metadata column with more distinct values is not offered as a colouring


def encoder_text(project: Project | None) -> str:
    """``spec · [preprocess: steps ·] weights`` of the project's encoder: what made the features is never hidden."""
    enc = (ENCODER.read(project) if project is not None else None) or {}
    if not enc:
        return "not indexed yet"
    steps = enc.get(PREPROCESS, NONE)
    preprocess = f" · preprocess: {steps}" if steps != NONE else ""
    return f"{enc.get('spec', '?')}{preprocess} · weights: {enc.get('weights', '?')}"


class ProjectModel(QObject):
    loaded = Signal()
    table_changed = Signal()  # rows re-sorted or recomputed (ranking, analysis)
    labels_changed = Signal(object)  # ndarray of item ids whose score/tags changed
    current_changed = Signal(int)  # item id, -1 for none
    selection_changed = Signal(object)  # ndarray of item ids, or None for "no selection"
    labelling_changed = Signal(bool)  # whether labels can be written now

    def __init__(self, parent=None):
        super().__init__(parent)
        self.project: Project | None = None
        self.table: pd.DataFrame | None = None
        self.state: TableState | None = None  # the table and what the views derive from it
        self.current: int | None = None
        self.selection: np.ndarray | None = None
        self.map_ids = np.empty(0, np.int64)  # items on the map, in map point order
        self._map_rows = np.empty(0, np.int64)  # their rows in self.table
        self._map_pos = np.empty(0, np.int64)  # item id -> map position (-1: not on the map)
        self._suspended = False  # the writer lock is lent to a background task (analysis, label import)
        self._lane: Lane | None = None  # where large tables are prepared (None: always at once)
        self._pending_project: Project | None = None  # opened, its table still being prepared
        self._labelled_meanwhile: list[int] = []  # label changes while a re-sorted table is prepared
        self._space_map: np.ndarray | None = None  # per item id, the map of the feature space in use (None: raw)

    def use_lane(self, lane: Lane) -> None:
        """Prepare tables of :data:`ASYNC_ITEMS` items and more as tasks in ``lane`` (latest wins)."""
        self._lane = lane

    @property
    def busy(self) -> bool:
        """A new table is being prepared in the background (the views still show the previous one)."""
        return self._lane is not None and bool(self._lane.tasks())

    def _prepare(self, fn, table: pd.DataFrame, *args, then) -> None:
        """``then(fn(table, *args))`` on the GUI thread: at once for a small table, else from a worker task.

        A newer request supersedes an older one (the lane is latest-wins).
        """
        if self._lane is None or len(table) < ASYNC_ITEMS:
            then(fn(table, *args))
            return
        task = Task("table", "Preparing the table", fn, table, *args)
        task.finished.connect(then)
        self._lane.submit(task)

    # ------------------------------------------------------------------ opening
    def open(self, root, writable: bool = True) -> None:
        """Open and load synchronously (scripts, tests); the window loads in a worker instead."""
        self.set_loaded(Project.open(root, writable=writable), load_table(root))

    def set_loaded(self, project: Project, table: pd.DataFrame) -> None:
        """Show ``project`` with its ``table`` (read in a worker: :func:`~oddscope.app.table_state.load_table`); ``loaded`` is
        emitted once the table is prepared (at once for a small one)."""
        self.close()
        self._pending_project = project
        self._prepare(table_state, table, then=self._show_loaded)

    def _show_loaded(self, state: TableState) -> None:
        project, self._pending_project = self._pending_project, None
        if project is None:
            return  # closed meanwhile
        self.project = project
        self._set_state(state)
        self.loaded.emit()
        self.labelling_changed.emit(self.can_label)

    def close(self) -> None:
        if self._lane is not None:
            self._lane.cancel_all()  # a table being prepared is for the project closing now
        for project in (self.project, self._pending_project):
            if project is not None:
                project.close()
        self.project = self._pending_project = self.table = self.state = None
        self.current = self.selection = None
        self._suspended = False
        self._labelled_meanwhile = []
        self._space_map = None
        self.map_ids = self._map_rows = self._map_pos = np.empty(0, np.int64)

    def set_table(self, table: pd.DataFrame) -> None:
        """A table rebuilt after the analysis changed (new scores, map, clusters)."""
        self._labelled_meanwhile = []
        self._prepare(table_state, table, self._space_map, self.state, then=self._swap)

    def _swap(self, state: TableState) -> None:
        """Show a newly prepared table, with the label changes made while it was prepared."""
        if self.table is None:
            return  # closed meanwhile
        changed, self._labelled_meanwhile = np.unique(self._labelled_meanwhile).astype(np.int64), []
        changed = changed[state.grid.positions(changed) >= 0]  # O(changed), not a pass over every id
        if len(changed):
            labels = self.table.loc[changed, ["label_score", "tags"]]
            state.table.loc[changed, "label_score"] = labels["label_score"]
            write_tags(state.table, changed, labels["tags"])
            state.grid.update_labels(labels)
        self._set_state(state)
        if self.selection is not None:
            self.selection = self.selection[state.grid.positions(self.selection) >= 0]
        self.table_changed.emit()

    def _set_state(self, state: TableState) -> None:
        self.state, self.table = state, state.table
        self.map_ids, self._map_rows, self._map_pos = state.map_ids, state.map_rows, state.map_pos

    @property
    def is_open(self) -> bool:
        return self.project is not None

    @property
    def read_only(self) -> bool:
        """Opened read-only because another process writes it (not: lent to our own background task)."""
        return self.project is not None and not self.project.writable and not self._suspended

    @property
    def can_label(self) -> bool:
        return self.project is not None and self.project.writable and not self._suspended

    def suspend_writing(self) -> None:
        """Hand the writer lock to a background task (re-analysis, label import): keep reading, stop labelling."""
        root = self.project.root
        self.project.close()
        self.project = Project.open(root, writable=False)
        self._suspended = True
        self.labelling_changed.emit(False)

    def resume_writing(self) -> None:
        """Take the writer lock back; read-only if another process took it meanwhile."""
        if not self._suspended or self.project is None:
            return
        root = self.project.root
        self.project.close()
        self._suspended = False
        try:
            self.project = Project.open(root, writable=True)
        except ProjectLocked:
            self.project = Project.open(root, writable=False)
        self.labelling_changed.emit(self.can_label)

    # ----------------------------------------------------------------- the map
    def map_xy(self) -> np.ndarray:
        return self.state.xy

    def set_space_map(self, xy: np.ndarray | None) -> None:
        """Show the map of a feature space (``xy`` per item id, the project's ``umap@<space>``), or the raw map
        (None); the views follow through ``table_changed``."""
        if xy is None and self._space_map is None:
            return
        self._space_map = None if xy is None else np.asarray(xy, np.float32)
        if self.table is not None:
            self._prepare(table_state, self.table, self._space_map, self.state, then=self._swap)

    def map_position(self, item_id: int | None) -> int | None:
        if item_id is None or not 0 <= item_id < len(self._map_pos) or self._map_pos[item_id] < 0:
            return None
        return int(self._map_pos[item_id])

    def map_positions(self, ids) -> np.ndarray:
        ids = np.asarray(ids, np.int64)
        ids = ids[(ids >= 0) & (ids < len(self._map_pos))]
        pos = self._map_pos[ids]
        return pos[pos >= 0]

    # -------------------------------------------------------- current/selection
    def set_current(self, item_id: int | None) -> None:
        item_id = None if item_id is None or item_id < 0 else int(item_id)
        if item_id == self.current:
            return
        self.current = item_id
        self.current_changed.emit(-1 if item_id is None else item_id)

    def set_selection(self, ids) -> None:
        """Select items (None or empty: no selection, every item shows)."""
        ids = None if ids is None or len(ids) == 0 else np.unique(np.asarray(ids, np.int64))
        if (ids is None and self.selection is None) or (
                ids is not None and self.selection is not None and np.array_equal(ids, self.selection)):
            return
        self.selection = ids
        self.selection_changed.emit(ids)

    def row(self, item_id: int) -> pd.Series:
        return self.table.loc[item_id]

    # ------------------------------------------------------------------- labels
    def _check_labelling(self) -> None:
        if self.project is None:
            raise ProjectError("no project is open")
        if self._suspended:
            raise ProjectError("labels wait while a background task writes the project; try again when it ends")
        if not self.project.writable:
            raise ProjectError("this project is open read-only: labels cannot be changed")

    def set_label(self, item_id: int, score) -> None:
        self._check_labelling()
        self.project.set_label(item_id, score=score)
        self._refresh_labels([item_id])

    def add_tag(self, item_id: int, tag: str) -> None:
        self._check_labelling()
        self.project.add_tag(item_id, tag)
        self._refresh_labels([item_id])

    def undo(self) -> int | None:
        """Undo the newest label change; returns the item it touched."""
        self._check_labelling()
        item_id = self.project.undo()
        if item_id is not None:
            self._refresh_labels([item_id])
        return item_id

    def redo(self) -> int | None:
        self._check_labelling()
        item_id = self.project.redo()
        if item_id is not None:
            self._refresh_labels([item_id])
        return item_id

    def refresh_all_labels(self) -> None:
        """Re-read every label (after a CSV import)."""
        labels = self.project.labels()
        self.table["label_score"] = labels["score"].reindex(self.table.index)
        self.table["tags"] = pd.Categorical([";".join(t) if isinstance(t, list) else "" for t in
                                             labels["tags"].reindex(self.table.index)])
        self.labels_changed.emit(self.table.index.to_numpy())

    def _refresh_labels(self, ids) -> None:
        for item_id in ids:
            score, tags = self.project.label(item_id)
            if item_id in self.table.index:
                self.table.at[item_id, "label_score"] = np.nan if score is None else float(score)
                write_tags(self.table, [item_id], [";".join(tags)])
        if self.busy:
            self._labelled_meanwhile.extend(int(i) for i in ids)
        self.state.grid.update_labels(self.table.loc[np.asarray(ids, np.int64), ["label_score", "tags"]])
        self.labels_changed.emit(np.asarray(ids, np.int64))

    def label_of(self, item_id: int) -> tuple[int | None, list[str]]:
        row = self.table.loc[item_id]
        score = row["label_score"]
        return (None if pd.isna(score) else int(score)), [t for t in str(row["tags"]).split(";") if t]

    def labelled_count(self) -> int:
        grid = self.state.grid if self.state is not None else None
        return 0 if grid is None else int((np.isfinite(grid.label_score) | grid.has_tags).sum())

    @property
    def n_ok(self) -> int:
        """Items whose status is "ok" (computed with the table, not per call: a string scan at 5M is slow)."""
        return 0 if self.state is None else self.state.n_ok

    def all_tags(self) -> list[str]:
        return self.project.all_tags() if self.project is not None else []

    # ------------------------------------------------------------------ ranking
    def rankings(self) -> list[str]:
        """Detectors, then the active-learning methods (fitted on the labels when chosen); SNAD's peers
        (non-standard rankers) are for `evaluate active` only."""
        if self.project is None:
            return []
        detectors = detector_names(self.project)
        return detectors + [n for n in RANKERS.standard() if n not in detectors]

    def ranking(self) -> str:
        return ranking_name(self.project)

    def set_ranking(self, name: str) -> None:
        """Make ``name`` the active ranking: re-rank and re-sort the table (stored if writable).  Its arrays are
        memory-mapped here and read where the table is re-sorted (a worker at scale)."""
        relevance = self.project.load_array(relevance_array(name), mmap=True)
        self.apply_ranking(name, ranking_scores(self.project, name, mmap=True), relevance)

    def apply_ranking(self, name: str, scores: np.ndarray, relevance: np.ndarray | None) -> None:
        """Re-rank and re-sort the table by per-item ``scores`` (e.g. fresh from the active learner)."""
        if self.can_label and RANKING.read(self.project) != name:  # we hold the writer lock; an fsync saved
            RANKING.write(self.project, name)
        self._labelled_meanwhile = []
        # a shallow copy (copy-on-write) for the worker: labels keep landing in self.table meanwhile
        self._prepare(reranked_state, self.table.copy(deep=False), scores, relevance, self._space_map, self.state,
                      then=self._swap)

    # ---------------------------------------------------------------- colouring
    def color_choices(self) -> list[tuple[str, str]]:
        """``(column, label)`` pairs the map can be coloured by."""
        if self.table is None:
            return []
        t = self.table
        choices = [("anomaly_score", f"anomaly score ({self.ranking()})")]
        choices += [(score_array(d), f"score: {d}") for d in detector_names(self.project)]
        if "predicted_relevance" in t:
            choices.append(("predicted_relevance", "predicted relevance"))
        choices += [("label_score", "label score"), ("tags", "tag")]
        choices += [(c, f"clusters: {c[len(CLUSTER_PREFIX):]}") for c in CLUSTER_ARRAYS if c in t]
        choices += [(c, f"meta: {c}") for c in self._meta_columns()]
        return choices

    def _meta_columns(self) -> list[str]:
        out = []
        for column in self.table.columns:
            if not is_metadata(column):
                continue
            values = self.table[column]
            if pd.api.types.is_numeric_dtype(values) or values.nunique() <= MAX_CATEGORIES:
                out.append(column)
        return out

    def color_values(self, column: str, state: TableState | None = None):
        """Values per map point: ``(float values, "numeric", [])`` or ``(int codes, "categorical", names)``.

        Categorical codes are -1 where an item has no value.  An item with
        several tags is coloured by its first.  ``state``: the table to read
        (default: the one shown); a new array on every call.
        """
        state = state or self.state
        table, map_rows = state.table, state.map_rows
        series = table[column]
        if isinstance(series.dtype, pd.CategoricalDtype):  # the tags, few-valued text: through the categories
            texts = [str(v) for v in series.cat.categories]
            if column == "tags":
                texts = [t.split(";")[0] for t in texts]
            names = sorted({t for t in texts if t})
            code = {name: i for i, name in enumerate(names)}
            lookup = np.array([code.get(t, -1) for t in texts] + [-1], np.int64)  # the last: a missing value
            return lookup[series.cat.codes.to_numpy()[map_rows]], "categorical", names
        values = series.to_numpy()[map_rows]
        if column == "cluster" or column in CLUSTER_ARRAYS:
            codes = values.astype(np.int64)
            top = int(codes.max()) if len(codes) else -1
            return codes, "categorical", [f"cluster {i}" for i in range(top + 1)]
        if pd.api.types.is_bool_dtype(table[column]) or not pd.api.types.is_numeric_dtype(table[column]):
            text = np.array(["" if pd.isna(v) else str(v) for v in values], dtype=object)
            names = sorted({v for v in text if v})
            return self._codes(text, names), "categorical", names
        return values.astype(np.float64), "numeric", []

    @staticmethod
    def _codes(values: np.ndarray, names: list[str]) -> np.ndarray:
        lookup = {name: i for i, name in enumerate(names)}
        return np.array([lookup.get(v, -1) for v in values], dtype=np.int64)
