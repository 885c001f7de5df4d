"""Keeps the map, ranking grid, image viewer and neighbours panel in step with the project model.

Selection and the current item are shared through :class:`~oddscope.app.model.ProjectModel`:
a map selection filters the grid, the current item shows in the viewer, is
ringed on the map and drives the neighbours panel.  This also owns what the
views read from the project: the thumbnail cache and the neighbours' query
connection, and the map's colouring.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets
from PySide6.QtCore import Qt

from oddscope.app import dialogs, jobs
from oddscope.app import model as project_model
from oddscope.app.item_details import label_html, map_caption, viewer_fields
from oddscope.app.map_render import ASYNC_POINTS
from oddscope.app.mapview import MapView
from oddscope.app.model import ProjectModel
from oddscope.app.neighbours import METRICS as NEIGHBOUR_METRICS
from oddscope.app.neighbours import NeighboursPanel
from oddscope.app.ranking import RankingView
from oddscope.app.session import ProjectSession
from oddscope.app.thumbs import ThumbnailCache
from oddscope.app.viewer import ImageViewer
from oddscope.app.worker import Lane, Task
from oddscope.core.progress import Progress
from oddscope.core.project.store import Project
from oddscope.core.workflows.extraction import recorded_steps

THUMB_SIZE = 112
TOOLTIP_SIDE = 160  # map hover card: small thumbnails are scaled up to be readable


class ViewSync(QtCore.QObject):
    """Routes the model's changes to the views and the views' picks back to the model."""

    def __init__(self, model: ProjectModel, map_view: MapView, ranking: RankingView, viewer: ImageViewer,
                 neighbours: NeighboursPanel, colour_combo: QtWidgets.QComboBox, thumbnail_lane: Lane,
                 session: ProjectSession, parent: QtWidgets.QWidget):
        super().__init__(parent)
        self.session = session  # runs a large project's neighbour index build (a status-bar task)
        self.thumbnail_lane = thumbnail_lane  # thumbnails load as tasks here, never behind an index build
        self.model = model
        self.map_view = map_view
        self.ranking = ranking
        self.viewer = viewer
        self.neighbours = neighbours
        self.colour_combo = colour_combo
        self.thumbs: ThumbnailCache | None = None
        self.colour_column = "anomaly_score"
        self.first_item_pending = False
        self._shown_xy: np.ndarray | None = None
        self._shown_colours = None  # ((column, kind, names, label), values) the map shows
        self._colour_lane = Lane("colours", parent=self)  # a big map's colour values, worked out off the GUI thread
        self._neighbour_progress = Progress()  # cancels the neighbour index build of the open project
        self._index_build = None  # the child-process index build of a large project (a Task), once started
        self._neighbour_query: jobs.NeighbourQuery | None = None  # the strip's query function
        self.neighbour_space: str | None = None  # the feature space neighbours are searched in (None: raw)
        m = model
        m.table_changed.connect(self.on_table_changed)
        m.current_changed.connect(self._on_current_changed)
        m.selection_changed.connect(self._on_selection_changed)
        map_view.selection_changed.connect(self._on_map_selection)
        map_view.clicked.connect(lambda pos: m.set_current(int(m.map_ids[pos])))
        map_view.set_tooltip_provider(self.map_tooltip)
        ranking.current_changed.connect(m.set_current)
        neighbours.walk_to.connect(m.set_current)
        neighbours.more_like_this.connect(m.set_selection)
        neighbours.index_needed.connect(self.build_neighbour_index)
        colour_combo.currentIndexChanged.connect(self._on_colour_choice)

    @property
    def colouring(self) -> bool:
        """A big map's colours or image are still being worked out in the background."""
        return bool(self._colour_lane.tasks()) or self.map_view.drawing

    # ============================================================ project life
    def project_loaded(self) -> None:
        """Fill every view from the newly loaded project; its first item follows in the next event-loop turn."""
        project = self.model.project
        self._make_thumbnails(project)
        self.fill_colour_choices()
        self._shown_xy = self._shown_colours = None
        self.neighbours.set_paths(self.model.table["path"])
        self.viewer.set_encoder_steps(recorded_steps(project))
        self.apply_metric(dialogs.analysis_settings()["metric"])
        self.set_neighbour_source(project.root)
        self.on_table_changed()
        # the first item is shown in the next event-loop turn: the grid and map paint in between,
        # so no single step holds the GUI thread for long
        self.first_item_pending = True
        QtCore.QTimer.singleShot(0, self._show_first_item)

    def project_closing(self) -> None:
        """Let go of the project before it closes: neighbour lookups, thumbnails, viewer, map."""
        self.set_neighbour_source(None)
        self.neighbour_space = None
        if self.thumbs is not None:
            self.thumbs.close()
        self.viewer.clear()
        self._shown_xy = self._shown_colours = None
        self.map_view.set_points(np.empty((0, 2), np.float32))

    def shutdown(self) -> None:
        """The window closes: skip queued neighbour lookups, stop an index build and the search process, stop the
        thumbnailers."""
        self.neighbours.show_item(None)
        self._neighbour_progress.cancel()  # a running index build stops at its next chunk
        if self._neighbour_query is not None:
            self._neighbour_query.close()
        if self.thumbs is not None:
            self.thumbs.close()

    def _show_first_item(self) -> None:
        self.first_item_pending = False
        if self.model.table is None or self.model.current is not None:
            return  # closed meanwhile, or the user already picked an item
        self.model.set_current(self.ranking.next_item())
        self.ranking.grid.setFocus()

    def set_neighbour_source(self, root) -> None:
        """Neighbours come from the project at ``root`` (None: nowhere), in :attr:`neighbour_space`; an index
        still being built for the previous source is abandoned."""
        self._neighbour_progress.cancel()
        if self._index_build is not None:
            self._index_build.cancel()
        if self._neighbour_query is not None:
            self._neighbour_query.close()
        self._neighbour_progress = Progress(self.neighbours.report_progress)
        self._neighbour_query = None if root is None else jobs.NeighbourQuery(
            root, self._neighbour_progress, self.neighbour_space, build_elsewhere_from=project_model.ASYNC_ITEMS)
        self.neighbours.set_query_function(self._neighbour_query)

    def build_neighbour_index(self, metric: str) -> None:
        """A lookup needs ``metric``'s index, which a project of :data:`~oddscope.app.model.ASYNC_ITEMS` items or
        more builds in a child process (a build in the window's process held its GIL: 300-450 ms stalls at 5M
        items): a status-bar task with progress and Cancel, after which the strip looks again."""
        if self.model.project is None or self.session.tasks.running("neighbour_index"):
            return  # the running build ends in a new lookup, which asks for this metric's index if still needed
        self._index_build = self.session.run_task(
            "neighbour_index", "Building the similar-items index",
            functools.partial(jobs.build_neighbour_index, self.model.project.root, metric, self.neighbour_space),
            None, in_process=True, on_done=functools.partial(self._neighbour_index_ended, self._neighbour_progress))

    def _neighbour_index_ended(self, source: Progress, outcome: str) -> None:
        """Look again once the index is built, or once the source changed meanwhile (its build was abandoned);
        a build of this source that was cancelled or failed is said in the strip."""
        if source is self._neighbour_progress and outcome != "finished":
            self.neighbours.index_build_stopped(outcome)
        elif self.model.project is not None:
            self.neighbours.requery()

    def set_neighbour_space(self, space: str | None) -> None:
        """Search neighbours in the feature space ``space`` (None: the raw features) from now on."""
        if space != self.neighbour_space:
            self.neighbour_space = space
            if self.model.project is not None:
                self.set_neighbour_source(self.model.project.root)

    def _make_thumbnails(self, project: Project) -> None:
        folder = project.layout.thumbnails
        if not project.writable or not os.access(project.root, os.W_OK):
            base = QtCore.QStandardPaths.writableLocation(QtCore.QStandardPaths.CacheLocation)
            folder = Path(base) / "thumbnails" / hashlib.sha1(str(project.root).encode()).hexdigest()[:16]
        self.thumbs = ThumbnailCache(folder, size=THUMB_SIZE, parent=self.parent(), lane=self.thumbnail_lane)
        self.ranking.set_thumbnail_cache(self.thumbs)
        self.neighbours.set_thumbnail_cache(self.thumbs)

    def fill_colour_choices(self) -> None:
        combo = self.colour_combo
        combo.blockSignals(True)
        combo.clear()
        for column, label in self.model.color_choices():
            combo.addItem(label, column)
        combo.setCurrentIndex(max(0, combo.findData(self.colour_column)))
        self.colour_column = combo.currentData()
        combo.blockSignals(False)

    def apply_metric(self, metric: str) -> None:
        values = [value for _, value in NEIGHBOUR_METRICS]
        if metric in values:
            self.neighbours.metric_combo.setCurrentIndex(values.index(metric))

    # ================================================================ model -> views
    def on_table_changed(self) -> None:
        """The table was reloaded, re-sorted or recomputed: refresh grid and map."""
        table = self.model.table
        if table is None:
            return
        current = self.model.current
        self.ranking.set_table(self.model.state.grid)
        xy = self.model.map_xy()
        if xy is not self._shown_xy:  # a new map, not a re-sort (table_state keeps the points of a re-sort)
            self._shown_xy = xy
            self._shown_colours = None
            self.map_view.set_points(self.model.state.points)
            if self.model.selection is not None:
                self.map_view.set_selection(self.model.map_positions(self.model.selection))
        self.apply_colouring()
        if current is not None:
            self.ranking.set_current_item(current)
            self.map_view.set_current(self.model.map_position(current))
            self.show_in_viewer(current)

    def on_labels_changed(self, ids) -> None:
        ids = np.asarray(ids, np.int64)
        self.ranking.update_labels(self.model.table.loc[ids, ["label_score", "tags"]])
        if self.colour_column in ("label_score", "tags"):
            self.apply_colouring()
        if self.model.current is not None and self.model.current in set(ids.tolist()):
            self.show_in_viewer(self.model.current)

    def _on_current_changed(self, item_id: int) -> None:
        if item_id < 0:
            self.map_view.set_current(None)
            self.viewer.clear()
            self.neighbours.show_item(None)
            return
        self.ranking.set_current_item(item_id)
        self.map_view.set_current(self.model.map_position(item_id))
        self.show_in_viewer(item_id)
        self.neighbours.show_item(item_id)

    def _on_selection_changed(self, ids) -> None:
        self.ranking.set_selection_filter(ids)
        if ids is None or len(ids) > 1:  # a click picks one point to look at: that alone does not filter
            self.ranking.selection_toggle.setChecked(ids is not None)
        positions = np.empty(0, np.int64) if ids is None else self.model.map_positions(ids)
        if not np.array_equal(positions, self.map_view.selection()):
            self.map_view.set_selection(positions)

    def _on_map_selection(self, positions) -> None:
        positions = np.asarray(positions, np.int64)
        self.model.set_selection(self.model.map_ids[positions] if len(positions) else None)

    def show_in_viewer(self, item_id: int) -> None:
        row = self.model.row(item_id)
        self.viewer.show_item(item_id, row["path"], viewer_fields(row, self.model.ranking()),
                              label_html(*self.model.label_of(item_id)))

    # ============================================================== map colouring
    def _on_colour_choice(self, _index: int) -> None:
        self.colour_column = self.colour_combo.currentData()
        self.apply_colouring()

    def apply_colouring(self) -> None:
        """Colour the map by the chosen column (for a big map, the values are read in a worker thread)."""
        column = self.colour_column
        state = self.model.state
        if state is None or column is None or not len(state.map_ids):
            return
        if len(state.map_ids) < ASYNC_POINTS:
            self._show_colours(column, self.model.color_values(column, state))
            return
        task = Task("colours", "Colouring the map", _colour_values, self.model, column, state)
        task.finished.connect(lambda result: self._show_colours(column, result)
                              if state is self.model.state and column == self.colour_column else None)
        self._colour_lane.submit(task)

    def _show_colours(self, column: str, colours) -> None:
        values, kind, names = colours
        label = self.colour_combo.currentText()
        shown = (column, kind, list(names) if names is not None else None, label)
        if self._shown_colours is not None and self._shown_colours[0] == shown and np.array_equal(
                self._shown_colours[1], values, equal_nan=kind != "categorical"):
            return  # e.g. a re-rank that left this column as it was: the map is right already
        self._shown_colours = (shown, values)  # color_values makes a new array on every call: no copy needed
        if kind == "categorical":
            self.map_view.set_categories(values, names, label)
        elif column == "label_score":
            self.map_view.set_colors(values, "plasma", 0, 5, label)
        else:
            self.map_view.set_colors(values, "viridis", None, None, label)

    def map_tooltip(self, position: int):
        """The map's hover card: the thumbnail (scaled up) over its caption; the caption alone until it is made."""
        item_id = int(self.model.map_ids[position])
        row = self.model.row(item_id)
        caption = map_caption(row)
        thumb = self.thumbs.get(item_id, row["path"]) if self.thumbs is not None else None
        if thumb is None:
            return caption
        thumb = thumb.scaled(TOOLTIP_SIDE, TOOLTIP_SIDE, Qt.KeepAspectRatio, Qt.SmoothTransformation)
        metrics = QtGui.QFontMetrics(self.parent().font())
        width = max(thumb.width(), metrics.horizontalAdvance(caption) + 8)
        card = QtGui.QPixmap(width, thumb.height() + metrics.height() + 6)
        card.fill(QtGui.QColor("#202226"))
        painter = QtGui.QPainter(card)
        painter.drawPixmap((width - thumb.width()) // 2, 0, thumb)
        painter.setPen(QtGui.QColor("#e6e6e6"))
        painter.drawText(QtCore.QRect(0, thumb.height() + 2, width, metrics.height() + 2), Qt.AlignCenter, caption)
        painter.end()
        return card


def _colour_values(model: ProjectModel, column: str, state, progress=None):
    """Task (worker thread): :meth:`ProjectModel.color_values` of the table ``state`` (``progress``: unused)."""
    return model.color_values(column, state)
