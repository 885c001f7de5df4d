"""The main window: map, ranking grid, image viewer and neighbours around one shared model.

Selection and the current item are shared through :class:`ProjectModel`: a
map selection filters the grid, the current item shows in the viewer, is
ringed on the map and drives the neighbours panel.  Labelling keys (0-5, T,
N, P, Ctrl+Z) are window-wide so the hand can stay on the keyboard whatever
has focus.  Long work (indexing, analysis, loading, export, import) runs as
background tasks with progress and Cancel in the status bar.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets
from PySide6.QtCore import Qt

from oddscope.core.models.rankers import RANKERS
from oddscope.core.progress import Progress
from oddscope.core.workflows.retrieval import Neighbours
from oddscope.core.project.store import Project, ProjectError, ProjectLocked
from oddscope.core.project.table import read_project_table
from oddscope.core.workflows.readiness import advice_if_not_analysed

from oddscope.app import dialogs
from oddscope.app.learning import ActiveLearner, prepare_session
from oddscope.app.mapview import MapView
from oddscope.app.model import ProjectModel, encoder_text
from oddscope.app.neighbours import METRICS as NEIGHBOUR_METRICS
from oddscope.app.neighbours import NeighboursPanel
from oddscope.app.ranking import SCORE_COLOURS, RankingView, format_score
from oddscope.app.thumbs import ThumbnailCache
from oddscope.app.viewer import ImageViewer
from oddscope.app.worker import TaskBar, TaskManager

MAX_RECENT = 8
DEFAULT_SIZE = (1600, 980)
DEFAULT_COLUMNS = (470, 640, 490)  # map, ranking, viewer
DEFAULT_ROWS = (730, 210)  # top panels, neighbours
THUMB_SIZE = 112
# Larger tables are read in a child process: building them holds the GIL in long C calls (SQLite rows,
# Arrow strings), which would freeze the window for seconds; smaller ones are not worth its start-up (~1 s)
TABLE_IN_PROCESS_ITEMS = 100_000
# How often an active-learning ranking refits on the labels: the user's choice (Label > Re-rank), 0 = on request
RELEARN_CHOICES = ((1, "After every label"), (5, "After every 5 labels"), (10, "After every 10 labels"),
                   (0, "Only when I press R"))
TOOLTIP_SIDE = 160  # map hover card: small thumbnails are scaled up to be readable
STYLE = Path(__file__).resolve().parent.parent / "resources" / "style.qss"


def _options(values: dict):
    """IndexOptions from the Settings values (the pipeline loads torch and UMAP: call on a worker)."""
    from oddscope.core.workflows.pipeline import IndexOptions

    chosen = {"detectors": tuple(values["detectors"])} if values["detectors"] else {}
    return IndexOptions(encoder=values["encoder"], weights=values["weights"] or None, k=int(values["k"]), **chosen)


def index_new_project(project_dir, images, values: dict, progress=None) -> dict:
    """Child process: create the project and index ``images`` into it.

    Returns the summary as a plain dict: unpickling a pipeline object would make
    the window's process import torch, and that import holds the GIL for whole
    tenths of a second (a frozen window).
    """
    from oddscope.core.workflows.pipeline import index_images

    with Project.create(project_dir) as project:
        summary = index_images(project, images, options=_options(values), progress=progress)
    return {"n_items": summary.n_items, "skipped": list(summary.skipped), "seconds": dict(summary.seconds)}


def import_labels_into(root, path, progress=None):
    """Import a labels CSV through a writer connection of this thread's own."""
    from oddscope.core.project.labels_io import import_labels

    with Project.open(root, writable=True) as project:
        return import_labels(project, path)


def _neighbour_query(root, progress: Progress):
    """``(item_id, k, metric) -> DataFrame`` for the neighbours panel's thread.

    It opens its own read-only connection there: a sqlite3 connection must not
    be used by two threads at once, and the GUI thread uses the model's.
    ``progress.cancel()`` stops a first-time index build (minutes at 10^6 items).
    """
    cache = {}

    def query(item_id: int, k: int, metric: str):
        if "neighbours" not in cache:
            cache["neighbours"] = Neighbours(Project.open(root), progress)
        return cache["neighbours"].of_item(item_id, k, metric)

    return query


def update_project(root, images, values: dict, reindex: bool, progress=None) -> None:
    """Child process: index (new images or a new encoder) or re-analyse the project at ``root``."""
    from oddscope.core.workflows.pipeline import analyse, index_images

    with Project.open(root, writable=True) as project:
        if reindex:
            index_images(project, images, options=_options(values), progress=progress)
        else:
            analyse(project, _options(values), progress=progress)


def theme_palette() -> QtGui.QPalette:
    """The dark palette: images read better on a dark surround."""
    colours = {
        QtGui.QPalette.Window: "#16181d", QtGui.QPalette.WindowText: "#e3e6eb", QtGui.QPalette.Base: "#181a1f",
        QtGui.QPalette.AlternateBase: "#242830", QtGui.QPalette.Text: "#e3e6eb", QtGui.QPalette.Button: "#23272f",
        QtGui.QPalette.ButtonText: "#e3e6eb", QtGui.QPalette.Highlight: "#3d7bd9",
        QtGui.QPalette.HighlightedText: "#ffffff", QtGui.QPalette.ToolTipBase: "#22262d",
        QtGui.QPalette.ToolTipText: "#e6e9ef", QtGui.QPalette.PlaceholderText: "#6b7383",
        QtGui.QPalette.Link: "#6aa5ff", QtGui.QPalette.BrightText: "#ff6b6b",
    }
    palette = QtGui.QPalette()
    for role, colour in colours.items():
        palette.setColor(role, QtGui.QColor(colour))
    for role in (QtGui.QPalette.WindowText, QtGui.QPalette.Text, QtGui.QPalette.ButtonText):
        palette.setColor(QtGui.QPalette.Disabled, role, QtGui.QColor("#5b6270"))
    return palette


def apply_theme(app: QtWidgets.QApplication) -> None:
    """Fusion, the dark palette and ``resources/style.qss``, application-wide.

    Application-wide because the views paint with the application palette and
    tooltips and message boxes must match; set before any widget is built.
    """
    if app.property("oddscope_theme"):
        return
    app.setStyle("Fusion")
    app.setPalette(theme_palette())
    if STYLE.exists():
        app.setStyleSheet(STYLE.read_text(encoding="utf-8"))
    app.setProperty("oddscope_theme", True)


def _panel(title: str, widget: QtWidgets.QWidget, tip: str = "") -> QtWidgets.QFrame:
    """A panel with a small caption (tells a new user what each area is); no caption without a title."""
    frame = QtWidgets.QFrame()
    frame.setObjectName("panel")
    layout = QtWidgets.QVBoxLayout(frame)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(0)
    if title:
        caption = QtWidgets.QLabel(title.upper())
        caption.setObjectName("panelTitle")
        caption.setToolTip(tip)
        layout.addWidget(caption)
    layout.addWidget(widget, 1)
    return frame


class MainWindow(QtWidgets.QMainWindow):
    """``restore_layout=False`` starts from the default size and layout (scripted screenshots)."""

    def __init__(self, parent=None, restore_layout: bool = True):
        super().__init__(parent)
        self.setWindowTitle("Oddscope")
        self.setObjectName("MainWindow")
        apply_theme(QtWidgets.QApplication.instance())
        self.model = ProjectModel(self)
        self.tasks = TaskManager(self)
        self.thumbs: ThumbnailCache | None = None
        self._loading = False
        self._colour_column = "anomaly_score"
        self._shown_xy: np.ndarray | None = None
        self._closed = False
        self._first_item_pending = False
        self._shown_colours = None  # ((column, kind, names, label), values) the map shows
        self._neighbour_progress = Progress()  # cancels the neighbour index build of the open project
        self._relearn_every = int(dialogs.app_settings().value("relearn_every", 1))
        self._labels_waiting = 0  # label changes not yet used by the active-learning ranking
        self._advice: str | None = None  # what to do with a project that has nothing to explore yet
        self.headless = False  # scripted runs: errors are collected in .errors, never shown in a modal dialog
        self.errors: list[str] = []

        self.map_view = MapView()
        self.ranking = RankingView()
        self.viewer = ImageViewer()
        self.neighbours = NeighboursPanel()
        self.banner = QtWidgets.QLabel()
        self.banner.setObjectName("banner")
        self.banner.setWordWrap(True)
        self.banner.hide()

        self.columns = QtWidgets.QSplitter(Qt.Horizontal)
        self.columns.addWidget(_panel("Map", self.map_view,
                                      "Every image placed by similarity (UMAP). Drag with R or L to select"))
        self.columns.addWidget(_panel("Ranking", self.ranking, "Images in the order of the active ranking"))
        self.columns.addWidget(_panel("Image", self.viewer, "The current image, its metadata and scores"))
        self.rows = QtWidgets.QSplitter(Qt.Vertical)
        self.rows.addWidget(self.columns)
        self.rows.addWidget(_panel("", self.neighbours))  # the panel has its own title bar
        for panel, width in zip((self.map_view, self.ranking, self.viewer), (200, 300, 240)):
            panel.setMinimumWidth(width)
        for splitter in (self.columns, self.rows):
            splitter.setChildrenCollapsible(False)
            splitter.setHandleWidth(5)
        central = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(central)
        layout.setContentsMargins(6, 4, 6, 2)
        layout.setSpacing(4)
        layout.addWidget(self.banner)
        layout.addWidget(self.rows, 1)
        self.setCentralWidget(central)

        self._make_actions()
        self._make_toolbar()
        self._make_menus()
        self._make_status_bar()
        self._connect()
        self.resize(*DEFAULT_SIZE)
        self.reset_layout()
        if restore_layout:
            self._restore_layout()
        self._update_enabled()

    # ================================================================== building
    def _action(self, text: str, slot, shortcut=None, tip: str = "", checkable: bool = False) -> QtGui.QAction:
        action = QtGui.QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QtGui.QKeySequence(shortcut))
            action.setShortcutContext(Qt.WindowShortcut)
        action.setToolTip(tip or text)
        action.setStatusTip(tip or text)
        action.setCheckable(checkable)
        action.triggered.connect(slot)
        self.addAction(action)  # shortcuts work whatever has focus, menu shown or not
        return action

    def _make_actions(self) -> None:
        a = self._action
        self.open_images_action = a("Open images folder…", self.ask_index_folder, "Ctrl+Shift+O",
                                    "Index a folder of images into a new project (runs in the background)")
        self.open_project_action = a("Open project…", self.ask_open_project, QtGui.QKeySequence.Open,
                                     "Open an existing Oddscope project folder")
        self.export_action = a("Export table…", self.ask_export, "Ctrl+E",
                               "Write the ranked table (scores, map, clusters, labels, metadata) to CSV or Parquet")
        self.import_action = a("Import labels…", self.ask_import_labels, None,
                               "Read scores and tags from a CSV (columns path, score and/or tags)")
        self.quit_action = a("Quit", self.close, QtGui.QKeySequence.Quit, "Close Oddscope (labels are already saved)")
        self.undo_action = a("Undo label", self.undo, QtGui.QKeySequence("Ctrl+Z"),
                             "Undo the last label change and go back to that image (Ctrl+Z)")
        self.redo_action = a("Redo label", self.redo, QtGui.QKeySequence("Ctrl+Shift+Z"),
                             "Redo the label change just undone (Ctrl+Shift+Z)")
        self.score_actions = [
            a(f"Score {n}", lambda _=False, n=n: self.label_current(n), str(n),
              f"Give relevance score {n} to the current image and go to the next (key {n}). "
              "0 = junk or artefact, 5 = exactly what I am looking for")
            for n in range(6)]
        self.tag_action = a("Tag…", self.ask_tag, "T", "Add a tag to the current image (T)")
        self.next_action = a("Next image", self.next_item, "N", "Go to the next image in the ranking (N)")
        self.previous_action = a("Previous image", self.previous_item, "P",
                                 "Go to the previous image in the ranking (P)")
        self.more_like_this_action = a("More like this", self.more_like_this, "M",
                                       "Select the current image's nearest neighbours on the map (M)")
        self.reset_layout_action = a("Reset layout", self.reset_layout, None, "Put every panel back where it was")
        self.settings_action = a("Settings…", self.ask_settings, "Ctrl+,",
                                 "Encoder, detectors, k and neighbour metric; re-runs the analysis in the background")
        self.shortcuts_action = a("Keyboard shortcuts", self.show_shortcuts, QtGui.QKeySequence("F1"),
                                  "Every keyboard shortcut (F1)")
        self.about_action = a("About Oddscope", self.show_about, None, "Version, encoder and weights in use")
        self.relearn_action = a("Re-rank now", self.relearn_now, "R",
                                "Refit the active-learning ranking on every label so far (R)")
        self.relearn_choice_actions = QtGui.QActionGroup(self)
        for every, text in RELEARN_CHOICES:
            action = QtGui.QAction(text, self.relearn_choice_actions, checkable=True)
            action.setData(every)
            action.setToolTip(f"When an active-learning ranking (oddscope, neighbourscore, protege) refits: {text.lower()}")
            action.setChecked(every == self._relearn_every)
            action.triggered.connect(lambda _=False, n=every: self.set_relearn_every(n))

    def _make_toolbar(self) -> None:
        bar = self.addToolBar("Main")
        bar.setObjectName("mainToolbar")
        bar.setMovable(False)
        self.colour_combo = QtWidgets.QComboBox()
        self.colour_combo.setToolTip("What colours the map: a score, your labels, tags, clusters or metadata")
        self.colour_combo.setMinimumWidth(190)
        self.ranking_combo = QtWidgets.QComboBox()
        self.ranking_combo.setToolTip("The active ranking: which detector (or learned ranking) orders the grid")
        self.ranking_combo.setMinimumWidth(150)
        bar.addWidget(QtWidgets.QLabel(" Colour by "))
        bar.addWidget(self.colour_combo)
        bar.addSeparator()
        bar.addWidget(QtWidgets.QLabel(" Ranking "))
        bar.addWidget(self.ranking_combo)
        bar.addSeparator()
        bar.addWidget(QtWidgets.QLabel(" Label "))
        self.score_buttons = []
        for n, action in enumerate(self.score_actions):
            button = QtWidgets.QToolButton()
            action.setIconText(str(n))
            button.setDefaultAction(action)
            button.setObjectName("scoreButton")
            button.setStyleSheet(f"QToolButton#scoreButton {{ border-bottom: 3px solid {SCORE_COLOURS[n]}; }}")
            bar.addWidget(button)
            self.score_buttons.append(button)
        bar.addAction(self.tag_action)
        bar.addSeparator()
        bar.addAction(self.undo_action)
        bar.addAction(self.redo_action)
        bar.addSeparator()
        bar.addAction(self.previous_action)
        bar.addAction(self.next_action)
        bar.addAction(self.more_like_this_action)
        self.undo_action.setIconText("Undo")
        self.redo_action.setIconText("Redo")
        self.previous_action.setIconText("◀ Prev")
        self.next_action.setIconText("Next ▶")
        self.toolbar = bar

    def _make_menus(self) -> None:
        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        file_menu.addAction(self.open_images_action)
        file_menu.addAction(self.open_project_action)
        self.recent_menu = file_menu.addMenu("Recent projects")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        file_menu.addSeparator()
        file_menu.addAction(self.export_action)
        file_menu.addAction(self.import_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        edit_menu = menu.addMenu("&Edit")
        edit_menu.addAction(self.undo_action)
        edit_menu.addAction(self.redo_action)
        label_menu = menu.addMenu("&Label")
        for action in self.score_actions:
            label_menu.addAction(action)
        label_menu.addAction(self.tag_action)
        label_menu.addSeparator()
        label_menu.addAction(self.next_action)
        label_menu.addAction(self.previous_action)
        label_menu.addAction(self.more_like_this_action)
        label_menu.addSeparator()
        relearn_menu = label_menu.addMenu("Re-rank")
        relearn_menu.setToolTipsVisible(True)
        relearn_menu.addAction(self.relearn_action)
        relearn_menu.addSeparator()
        relearn_menu.addActions(self.relearn_choice_actions.actions())
        view_menu = menu.addMenu("&View")
        view_menu.addAction(self.reset_layout_action)
        settings_menu = menu.addMenu("&Settings")
        settings_menu.addAction(self.settings_action)
        help_menu = menu.addMenu("&Help")
        help_menu.addAction(self.shortcuts_action)
        help_menu.addAction(self.about_action)
        for m in (file_menu, edit_menu, label_menu, view_menu, settings_menu, help_menu):
            m.setToolTipsVisible(True)

    def _make_status_bar(self) -> None:
        status = self.statusBar()
        self.items_label = QtWidgets.QLabel("No project")
        self.items_label.setToolTip("Images in the project: indexed / skipped (see skipped.csv in the project)")
        self.labelled_label = QtWidgets.QLabel()
        self.labelled_label.setToolTip("Images you have scored or tagged")
        self.encoder_label = QtWidgets.QLabel()
        self.encoder_label.setObjectName("encoderLabel")
        self.encoder_label.setToolTip("Encoder and weights that computed this project's features")
        self.task_bar = TaskBar(self.tasks)
        for widget in (self.task_bar, self.items_label, self.labelled_label, self.encoder_label):
            status.addPermanentWidget(widget)

    def _connect(self) -> None:
        m = self.model
        m.loaded.connect(self._on_loaded)
        m.table_changed.connect(self._on_table_changed)
        self.learner = ActiveLearner(self)
        self.learner.updated.connect(self._on_learned)
        self.learner.failed.connect(lambda message: self.statusBar().showMessage(message, 8000))
        m.labels_changed.connect(self._on_labels_changed)
        m.current_changed.connect(self._on_current_changed)
        m.selection_changed.connect(self._on_selection_changed)
        m.labelling_changed.connect(lambda _: self._update_enabled())
        self.map_view.selection_changed.connect(self._on_map_selection)
        self.map_view.clicked.connect(lambda pos: m.set_current(int(m.map_ids[pos])))
        self.map_view.set_tooltip_provider(self._map_tooltip)
        self.ranking.current_changed.connect(m.set_current)
        self.neighbours.walk_to.connect(m.set_current)
        self.neighbours.more_like_this.connect(m.set_selection)
        self.colour_combo.currentIndexChanged.connect(self._on_colour_choice)
        self.ranking_combo.currentTextChanged.connect(self._on_ranking_choice)
        self.tasks.started.connect(lambda _: self._update_enabled())
        self.tasks.ended.connect(lambda _: self._update_enabled())
        map_keys = {a.shortcut().toString() for a in self.map_view.actions() if not a.shortcut().isEmpty()}
        self._map_clashes = {a: a.shortcut() for a in self.actions() if a.shortcut().toString() in map_keys}
        QtWidgets.QApplication.instance().focusChanged.connect(self._on_focus_changed)

    def _on_focus_changed(self, _old, new) -> None:
        """While the map has focus its own keys (P = pan mode) win over window keys bound the same."""
        in_map = new is not None and self.map_view.isAncestorOf(new)
        for action, shortcut in self._map_clashes.items():
            action.setShortcut(QtGui.QKeySequence() if in_map else shortcut)

    # ============================================================ opening/loading
    def last_project(self) -> str | None:
        """The project open at the end of the last session, if it still exists."""
        path = dialogs.app_settings().value("last_project", None)
        return path if path and (Path(path) / "oddscope.sqlite").exists() else None

    def recent_projects(self) -> list[str]:
        value = dialogs.app_settings().value("recent_projects", [])
        value = [value] if isinstance(value, str) else list(value or [])
        return [p for p in value if (Path(p) / "oddscope.sqlite").exists()]

    def _remember_project(self, root: Path) -> None:
        s = dialogs.app_settings()
        recent = [str(root)] + [p for p in self.recent_projects() if p != str(root)]
        s.setValue("recent_projects", recent[:MAX_RECENT])
        s.setValue("last_project", str(root))

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for path in self.recent_projects():
            action = self.recent_menu.addAction(path)
            action.triggered.connect(lambda _=False, p=path: self.open_project(p))
        if self.recent_menu.isEmpty():
            self.recent_menu.addAction("No recent projects").setEnabled(False)

    def ask_open_project(self) -> None:
        path = QtWidgets.QFileDialog.getExistingDirectory(self, "Open Oddscope project")
        if path:
            self.open_project(path)

    def open_project(self, root) -> bool:
        """Open ``root`` (writable, or read-only if another process writes it) and load it in the background."""
        if self._busy_with_project("open another project"):
            return False
        root = Path(root).resolve()
        try:
            try:
                project = Project.open(root, writable=True)
            except ProjectLocked as err:
                if not self.headless and not dialogs.ask_yes_no(self, "Project in use",
                                          f"{err}\n\nOpen it read-only? You can browse, search and export, "
                                          "but not label."):
                    return False
                project = Project.open(root, writable=False)
        except ProjectError as err:
            self.show_error("Cannot open project", str(err))
            return False
        self._close_project()
        self._loading = True
        self.items_label.setText(f"Loading {root.name}…")
        self.tasks.run("load", f"Opening {root.name}", read_project_table, root,
                       in_process=project.n_items > TABLE_IN_PROCESS_ITEMS,
                       on_finished=lambda table: self.model.set_loaded(project, table),
                       on_failed=self._load_failed,
                       on_done=functools.partial(self._load_ended, project))
        self._update_enabled()
        return True

    def _load_ended(self, project: Project, outcome: str) -> None:
        """Opening failed or was cancelled: let go of the project (and its writer lock)."""
        if outcome == "finished":
            return
        project.close()
        if outcome == "cancelled":
            self._loading = False
            self.items_label.setText("No project")
            self._update_enabled()

    def show_error(self, title: str, message: str, details: str = "") -> None:
        if self.headless:
            self.errors.append(f"{title}: {message}")
            self.statusBar().showMessage(f"{title}: {message}")
        else:
            dialogs.show_error(self, title, message, details)

    def _load_failed(self, message: str, details: str) -> None:
        self._loading = False
        self.items_label.setText("No project")
        self._update_enabled()
        self.show_error("Cannot open project", message, details)

    def _close_project(self) -> None:
        self._set_neighbour_source(None)
        if self.thumbs is not None:
            self.thumbs.close()
        self.model.close()
        self._advice = None
        self.viewer.clear()
        self._shown_xy = self._shown_colours = None
        self.map_view.set_points(np.empty((0, 2), np.float32))

    def _busy_with_project(self, what: str) -> bool:
        """True (and says so) while a task reads or writes the open project."""
        running = [t for t in self.tasks.running() if t.kind in ("load", "analyse", "import")]
        if running and self.headless:
            self.show_error("Busy", f"Cannot {what} while “{running[0].title}” runs.")
        elif running:
            QtWidgets.QMessageBox.information(
                self, "Busy", f"Cannot {what} while “{running[0].title}” runs. Wait for it or press Cancel.")
        return bool(running)

    def _on_loaded(self) -> None:
        self._loading = False
        self._labels_waiting = 0
        self.learner.reset()
        project = self.model.project
        self._remember_project(project.root)
        self._make_thumbnails(project)
        self._fill_combos()
        self._shown_xy = self._shown_colours = None
        self.neighbours.set_paths(self.model.table["path"])
        self._apply_metric(dialogs.analysis_settings()["metric"])
        self._set_neighbour_source(project.root)
        self._on_table_changed()
        self._update_title()
        self._update_enabled()
        # the first item is shown in the next event-loop turn: the grid and map paint in between,
        # so no single step holds the GUI thread for long
        self._first_item_pending = True
        QtCore.QTimer.singleShot(0, self._show_first_item)

    def _show_first_item(self) -> None:
        self._first_item_pending = False
        if self.model.table is None or self.model.current is not None:
            return  # closed meanwhile, or the user already picked an item
        self.model.set_current(self.ranking.next_item())
        self.ranking.grid.setFocus()

    def _set_neighbour_source(self, root) -> None:
        """Neighbours come from the project at ``root`` (None: nowhere); an index still being built
        for the previous source is abandoned."""
        self._neighbour_progress.cancel()
        self._neighbour_progress = Progress(self.neighbours.report_progress)
        self.neighbours.set_query_function(None if root is None else _neighbour_query(root, self._neighbour_progress))

    def _make_thumbnails(self, project: Project) -> None:
        folder = project.root / "thumbnails"
        if not project.writable or not os.access(project.root, os.W_OK):
            base = QtCore.QStandardPaths.writableLocation(QtCore.QStandardPaths.CacheLocation)
            folder = Path(base) / "thumbnails" / hashlib.sha1(str(project.root).encode()).hexdigest()[:16]
        self.thumbs = ThumbnailCache(folder, size=THUMB_SIZE, parent=self)
        self.ranking.set_thumbnail_cache(self.thumbs)
        self.neighbours.set_thumbnail_cache(self.thumbs)

    def _fill_combos(self) -> None:
        for combo in (self.colour_combo, self.ranking_combo):
            combo.blockSignals(True)
            combo.clear()
        for column, label in self.model.color_choices():
            self.colour_combo.addItem(label, column)
        index = self.colour_combo.findData(self._colour_column)
        self.colour_combo.setCurrentIndex(max(0, index))
        self._colour_column = self.colour_combo.currentData()
        self.ranking_combo.addItems(self.model.rankings())
        self.ranking_combo.setCurrentText(self.model.ranking())
        for combo in (self.colour_combo, self.ranking_combo):
            combo.blockSignals(False)

    def is_ready(self) -> bool:
        """Loaded, idle, the current image and the first thumbnails drawn (for scripted screenshots)."""
        if self.model.table is None or self._loading or self._first_item_pending or self.tasks.running("load"):
            return False
        if self.model.current is not None and not self.viewer.is_settled():
            return False
        if self.neighbours.status.text().startswith("searching"):
            return False
        visible = self.ranking.visible_ids()[:12]
        paths = self.model.table["path"]
        return all(self.thumbs.get(int(i), paths.at[int(i)]) is not None for i in visible)

    # ================================================================ model -> views
    def _on_table_changed(self) -> None:
        """The table was reloaded, re-sorted or recomputed: refresh grid, map and status."""
        table = self.model.table
        if table is None:
            return
        self._advice = advice_if_not_analysed(self.model.project.root, table["status"],
                                              analysed=bool((table["rank"] > 0).any()))
        current = self.model.current
        self.ranking.set_table(table)
        xy = self.model.map_xy()
        if self._shown_xy is None or not np.array_equal(xy, self._shown_xy):  # a new map, not a re-sort
            self._shown_xy = xy
            self._shown_colours = None
            self.map_view.set_points(xy)
            if self.model.selection is not None:
                self.map_view.set_selection(self.model.map_positions(self.model.selection))
        self._apply_colouring()
        if current is not None:
            self.ranking.set_current_item(current)
            self.map_view.set_current(self.model.map_position(current))
            self._show_in_viewer(current)
        self._update_status()

    def _on_labels_changed(self, ids) -> None:
        if self.model.ranking() in RANKERS:
            self._labels_waiting += 1
            if 0 < self._relearn_every <= self._labels_waiting:
                self._relearn(self.model.ranking())
        table = self.model.table
        ids = np.asarray(ids, np.int64)
        self.ranking.update_labels(table.loc[ids, ["label_score", "tags"]])
        if self._colour_column in ("label_score", "tags"):
            self._apply_colouring()
        if self.model.current is not None and self.model.current in set(ids.tolist()):
            self._show_in_viewer(self.model.current)
        self._update_status()

    def _on_current_changed(self, item_id: int) -> None:
        if item_id < 0:
            self.map_view.set_current(None)
            self.viewer.clear()
            self.neighbours.show_item(None)
            return
        self.ranking.set_current_item(item_id)
        self.map_view.set_current(self.model.map_position(item_id))
        self._show_in_viewer(item_id)
        self.neighbours.show_item(item_id)
        self._update_enabled()

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

    def _show_in_viewer(self, item_id: int) -> None:
        row = self.model.row(item_id)
        fields = [("Rank", f"#{int(row['rank'])}" if row["rank"] else "unranked"),
                  (f"Anomaly score ({self.model.ranking()})", format_score(row["anomaly_score"]))]
        if "predicted_relevance" in row:
            fields.append(("Predicted relevance", format_score(row["predicted_relevance"])))
        for column in row.index:
            if column.startswith("score_"):
                fields.append((f"score: {column[len('score_'):]}", format_score(row[column])))
        if "cluster" in row:
            fields.append(("Cluster", str(row["cluster"]) if row["cluster"] >= 0 else "–"))
        fields.append(("Status", row["status"] + (f" ({row['reason']})" if row["reason"] else "")))
        known = {"path", "status", "reason", "role", "rank", "anomaly_score", "predicted_relevance", "umap_x",
                 "umap_y", "cluster", "label_score", "tags", "cluster_kmeans", "cluster_gmm", "cluster_ward"}
        for column in row.index:
            if column not in known and not column.startswith("score_") and str(row[column]) not in ("nan", "None"):
                fields.append((column, str(row[column])))
        fields.append(("Path", row["path"]))
        self.viewer.show_item(item_id, row["path"], fields, self._label_html(item_id))

    def _label_html(self, item_id: int) -> str:
        score, tags = self.model.label_of(item_id)
        parts = []
        if score is not None:
            parts.append(f"<span style='background:{SCORE_COLOURS[score]}; color:white;'>&nbsp;{score}&nbsp;</span>")
        parts += [f"<span style='color:#c9d1e0'>#{t}</span>" for t in tags]
        return " ".join(parts) if parts else "<span style='color:#6b7280'>unlabelled</span>"

    def _update_status(self) -> None:
        table = self.model.table
        if table is None:
            self.items_label.setText("No project")
            self.labelled_label.clear()
            self.encoder_label.clear()
            return
        ok = int((table["status"] == "ok").sum())
        skipped = len(table) - ok
        self.items_label.setText(f"{len(table):,} images" + (f" ({skipped:,} skipped)" if skipped else ""))
        waiting = (f" · {self._labels_waiting} not yet used for re-ranking (R)"
                   if self._labels_waiting and self.model.ranking() in RANKERS else "")
        self.labelled_label.setText(f"{self.model.labelled_count():,} labelled{waiting}")
        full = f"Encoder: {encoder_text(self.model.project)}"
        short = full.split(" (")[0]  # the weights' name; file and checksum are in the tooltip
        metrics = QtGui.QFontMetrics(self.encoder_label.font())
        self.encoder_label.setText(metrics.elidedText(short, Qt.ElideRight, 780))
        self.encoder_label.setToolTip(f"{full}\n(the encoder and weights that computed this project's features)")

    def _update_title(self) -> None:
        project = self.model.project
        if project is None:
            self.setWindowTitle("Oddscope")
            return
        self.setWindowTitle(f"{project.root.name} — Oddscope" + (" [read-only]" if self.model.read_only else ""))

    def _update_enabled(self) -> None:
        has_project = self.model.table is not None
        can_label = self.model.can_label
        has_current = self.model.current is not None
        for action in self.score_actions + [self.tag_action]:
            action.setEnabled(can_label and has_current)
        for action in (self.undo_action, self.redo_action):
            action.setEnabled(can_label)
        for action in (self.next_action, self.previous_action, self.more_like_this_action):
            action.setEnabled(has_project)
        self.export_action.setEnabled(has_project and not self.tasks.running("export"))
        self.import_action.setEnabled(can_label)
        self.settings_action.setEnabled(has_project and not self.model.read_only)
        self.colour_combo.setEnabled(has_project)
        self.ranking_combo.setEnabled(has_project)
        self._update_banner()

    def _update_banner(self) -> None:
        text = ""
        if self.model.read_only:
            text = ("Read-only: another Oddscope is writing this project, so labelling is switched off here. "
                    "Close it there and reopen this project to label.")
        elif self.model.is_open and not self.model.can_label:
            text = ("A background task is writing the project (see the status bar): "
                    "labelling resumes when it finishes.")
        elif self._advice:  # nothing to explore yet
            text = self._advice
        self.banner.setText(text)
        self.banner.setVisible(bool(text))

    # ============================================================== map colouring
    def _on_colour_choice(self, _index: int) -> None:
        self._colour_column = self.colour_combo.currentData()
        self._apply_colouring()

    def _apply_colouring(self) -> None:
        column = self._colour_column
        if self.model.table is None or column is None or not len(self.model.map_ids):
            return
        values, kind, names = self.model.color_values(column)
        label = self.colour_combo.currentText()
        shown = (column, kind, list(names) if names is not None else None, label)
        if self._shown_colours is not None and self._shown_colours[0] == shown and np.array_equal(
                self._shown_colours[1], values, equal_nan=kind != "categorical"):
            return  # e.g. a re-rank that left this column as it was: the map is right already
        self._shown_colours = (shown, np.array(values, copy=True))
        if kind == "categorical":
            self.map_view.set_categories(values, names, label)
        elif column == "label_score":
            self.map_view.set_colors(values, "plasma", 0, 5, label)
        else:
            self.map_view.set_colors(values, "viridis", None, None, label)

    def _map_tooltip(self, position: int):
        item_id = int(self.model.map_ids[position])
        row = self.model.row(item_id)
        caption = f"#{int(row['rank'])}  ·  {format_score(row['anomaly_score'])}  ·  {Path(row['path']).name}"
        thumb = self.thumbs.get(item_id, row["path"]) if self.thumbs is not None else None
        if thumb is None:
            return caption
        thumb = thumb.scaled(TOOLTIP_SIDE, TOOLTIP_SIDE, Qt.KeepAspectRatio, Qt.SmoothTransformation)
        metrics = QtGui.QFontMetrics(self.font())
        width = max(thumb.width(), metrics.horizontalAdvance(caption) + 8)
        card = QtGui.QPixmap(width, thumb.height() + metrics.height() + 6)
        card.fill(QtGui.QColor("#202226"))
        painter = QtGui.QPainter(card)
        painter.drawPixmap((width - thumb.width()) // 2, 0, thumb)
        painter.setPen(QtGui.QColor("#e6e6e6"))
        painter.drawText(QtCore.QRect(0, thumb.height() + 2, width, metrics.height() + 2), Qt.AlignCenter, caption)
        painter.end()
        return card

    def _on_ranking_choice(self, name: str) -> None:
        if name and self.model.table is not None and name != self.model.ranking():
            self.colour_combo.setItemText(0, f"anomaly score ({name})")
            if name in RANKERS:
                self._relearn(name)
            else:
                self.model.set_ranking(name)

    def set_relearn_every(self, every: int) -> None:
        """Refit after every ``every`` label changes (0: only on request); remembered across sessions."""
        self._relearn_every = int(every)
        dialogs.app_settings().setValue("relearn_every", self._relearn_every)
        for action in self.relearn_choice_actions.actions():
            action.setChecked(action.data() == self._relearn_every)
        if self._labels_waiting and 0 < self._relearn_every <= self._labels_waiting:
            self.relearn_now()

    def relearn_now(self) -> None:
        method = self.model.ranking() if self.model.table is not None else None
        if method not in RANKERS:
            self.statusBar().showMessage("Re-ranking learns from your labels: choose an active-learning ranking "
                                         f"({', '.join(r for r in RANKERS if r != 'plain')}) first", 6000)
            return
        self._relearn(method)

    def _relearn(self, method: str) -> None:
        """Refit the active-learning ranking on the labels so far, in the background.

        The first time in a session the method is prepared as a task (progress bar, Cancel): at 10^5
        items that takes seconds; every refit after it takes milliseconds.  It only reads the project,
        so a read-only window re-ranks too (it just does not save the result).
        """
        if self.model.project is None:
            return
        if not self.learner.has_session(method):
            root = self.model.project.root
            self._run("prepare", f"Preparing the {method} ranking", functools.partial(prepare_session, root, method),
                      lambda session: self._prepared(root, method, session),
                      on_done=self._preparation_ended)
            return  # a preparation already running re-ranks with the method chosen when it ends
        self._labels_waiting = 0
        self.statusBar().showMessage(f"Re-ranking with {method}…")
        self.learner.request(self.model.project.root, method, self.model.project.labels())

    def _prepared(self, root, method: str, session) -> None:
        if self.model.table is not None and self.model.project.root == root:  # not another project meanwhile
            self.learner.set_session(session)

    def _preparation_ended(self, outcome: str) -> None:
        """Re-rank with the method chosen now (it may have changed meanwhile: then it is prepared in turn);
        after a failure or Cancel the combo goes back to the ranking in use."""
        if self.model.table is None:
            return
        wanted = self.ranking_combo.currentText()
        if outcome == "finished":
            if wanted in RANKERS and self.model.project is not None:
                self._relearn(wanted)
            return
        self.ranking_combo.blockSignals(True)
        self.ranking_combo.setCurrentText(self.model.ranking())
        self.ranking_combo.blockSignals(False)
        self.colour_combo.setItemText(0, f"anomaly score ({self.model.ranking()})")

    def _on_learned(self, method: str, scores, relevance, seconds: float) -> None:
        if self.model.table is None or self.ranking_combo.currentText() != method:
            return  # the user moved on to another ranking meanwhile
        if self.model.can_label:  # not while the writer lock is lent to a background task
            self.model.project.save_array(f"rank_{method}", scores)
            if relevance is not None:
                self.model.project.save_array(f"relevance_{method}", relevance)
        self.model.apply_ranking(method, scores, relevance)
        labelled = int(self.model.table["label_score"].notna().sum())
        self.statusBar().showMessage(f"Re-ranked with {method} on {labelled} label(s) in {seconds * 1000:.0f} ms", 5000)

    # ================================================================== labelling
    def label_current(self, score: int) -> None:
        """Give ``score`` to the current image and move to the next one in the grid's visible order."""
        item_id = self.model.current
        if item_id is None or not self._label_guard():
            return
        self.model.set_label(item_id, score)
        self.statusBar().showMessage(f"Scored {Path(self.model.row(item_id)['path']).name}: {score}", 4000)
        self.next_item()

    def ask_tag(self) -> None:
        item_id = self.model.current
        if item_id is None or not self._label_guard():
            return
        tag = dialogs.ask_tag(self, self.model.all_tags())
        if tag:
            self.model.add_tag(item_id, tag)
            self.statusBar().showMessage(f"Tagged {Path(self.model.row(item_id)['path']).name}: {tag}", 4000)

    def undo(self) -> None:
        if not self._label_guard():
            return
        item_id = self.model.undo()
        if item_id is None:
            self.statusBar().showMessage("Nothing to undo", 3000)
            return
        self.model.set_current(item_id)
        self.statusBar().showMessage(f"Undid the label of {Path(self.model.row(item_id)['path']).name}", 4000)

    def redo(self) -> None:
        if not self._label_guard():
            return
        item_id = self.model.redo()
        if item_id is None:
            self.statusBar().showMessage("Nothing to redo", 3000)
            return
        self.model.set_current(item_id)

    def _label_guard(self) -> bool:
        if self.model.can_label:
            return True
        self.statusBar().showMessage(
            "Labelling is off: " + ("the project is read-only" if self.model.read_only
                                    else "wait for the background task to finish"), 5000)
        return False

    def next_item(self) -> None:
        item_id = self.ranking.next_item()
        if item_id is not None:
            self.model.set_current(item_id)

    def previous_item(self) -> None:
        item_id = self.ranking.previous_item()
        if item_id is not None:
            self.model.set_current(item_id)

    def more_like_this(self) -> None:
        """Select the current image and its neighbours on the map (and so in the grid)."""
        if self.neighbours.more_button.isEnabled():
            self.neighbours.more_button.click()
        else:
            self.statusBar().showMessage("The neighbours of this image are still being searched", 3000)

    # ================================================================ background
    def ask_index_folder(self) -> None:
        images = QtWidgets.QFileDialog.getExistingDirectory(self, "Images folder to index")
        if not images:
            return
        project = QtWidgets.QFileDialog.getExistingDirectory(
            self, "Project folder (new or empty; or an existing project to add these images to)")
        if project:
            self.index_folder(images, project)

    def index_folder(self, images, project_dir) -> None:
        """Index ``images`` into ``project_dir`` in a background process, then open it."""
        values = dialogs.analysis_settings()
        project_dir = Path(project_dir).resolve()
        if self.model.is_open and project_dir == self.model.project.root:
            self._update_open_project("Indexing", images, values, reindex=True)
            return

        def done(summary) -> None:
            skipped = f"; {len(summary['skipped'])} skipped (see skipped.csv)" if summary["skipped"] else ""
            self.statusBar().showMessage(f"Indexed {summary['n_items']:,} images{skipped}", 8000)
            self.open_project(project_dir)

        self._run("index", f"Indexing {Path(images).name}",
                  functools.partial(index_new_project, project_dir, images, values), done, in_process=True)

    def _run(self, kind: str, title: str, fn, on_finished, *args, **kwargs):
        task = self.tasks.run(kind, title, fn, *args, on_finished=on_finished,
                              on_failed=lambda m, d: self.show_error(f"{title} failed", m, d),
                              on_cancelled=lambda: self.statusBar().showMessage(f"{title}: cancelled", 5000),
                              **kwargs)
        if task is None:
            self.statusBar().showMessage(f"“{title}” is already running", 4000)
        return task

    def _update_open_project(self, title: str, images, values: dict, reindex: bool) -> None:
        """Re-index or re-analyse the open project in a child process, which takes the writer lock
        meanwhile (labelling pauses, browsing goes on); then read the new table."""
        if self._busy_with_project(title.lower()):
            return
        root = self.model.project.root
        self.model.suspend_writing()
        task = self._run("analyse", title, functools.partial(update_project, root, images, values, reindex),
                         None, in_process=True, on_done=self._analysis_ended)
        if task is None:
            self.model.resume_writing()

    def _analysis_ended(self, outcome: str) -> None:
        if self._closed or not self.model.is_open:
            return
        self.model.resume_writing()
        if outcome == "finished":
            self._set_neighbour_source(self.model.project.root)  # new features
            self._run("load", "Reading the new analysis", read_project_table, self._analysis_loaded,
                      self.model.project.root, in_process=self.model.project.n_items > TABLE_IN_PROCESS_ITEMS)

    def _analysis_loaded(self, table) -> None:
        self.learner.reset()  # prepared on the old features
        self.model.set_table(table)
        self._fill_combos()
        self.statusBar().showMessage("Analysis updated", 5000)

    def ask_settings(self) -> None:
        before = dialogs.analysis_settings()
        dialog = dialogs.SettingsDialog(before, self)
        if dialog.exec() != QtWidgets.QDialog.Accepted:
            return
        after = dialog.values()
        dialogs.save_analysis_settings(after)
        self.apply_settings(before, after)

    def apply_settings(self, before: dict, after: dict) -> None:
        """Re-run what the changed settings affect, in the background."""
        if (after["encoder"], after["weights"]) != (before["encoder"], before["weights"]):
            self._update_open_project("Computing features", None, after, reindex=True)
        elif (after["detectors"], after["k"]) != (before["detectors"], before["k"]):
            self._update_open_project("Re-scoring", None, after, reindex=False)
        self._apply_metric(after["metric"])

    def _apply_metric(self, metric: str) -> None:
        values = [value for _, value in NEIGHBOUR_METRICS]
        if metric in values:
            self.neighbours.metric_combo.setCurrentIndex(values.index(metric))

    def ask_export(self) -> None:
        project = self.model.project
        default = str(Path(QtCore.QDir.homePath()) / f"{project.root.name}.csv")
        path, chosen = QtWidgets.QFileDialog.getSaveFileName(self, "Export table", default,
                                                             "CSV (*.csv);;Parquet (*.parquet)")
        if path:
            if Path(path).suffix.lower() not in (".csv", ".parquet"):
                path += ".parquet" if "parquet" in chosen.lower() else ".csv"
            self.export_table(path)

    def export_table(self, path):
        """Write the table in the background, from a read-only connection of its own."""
        from oddscope.core.project.table import export_table

        root = self.model.project.root

        def work(progress=None):
            with Project.open(root) as project:
                return export_table(project, path)

        return self._run("export", "Exporting", work,
                         lambda out: self.statusBar().showMessage(f"Exported the table to {out}", 8000))

    def ask_import_labels(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Import labels", "", "CSV (*.csv);;All files (*)")
        if path:
            self.import_labels(path)

    def import_labels(self, path):
        """Import in the background; the model lends its writer lock to the import meanwhile."""
        if self._busy_with_project("import labels"):
            return None
        root = self.model.project.root
        self.model.suspend_writing()
        task = self._run("import", "Importing labels", functools.partial(import_labels_into, root, path),
                         self._import_done, on_done=lambda _outcome: self.model.resume_writing())
        if task is None:
            self.model.resume_writing()
        return task

    def _import_done(self, report) -> None:
        self.model.refresh_all_labels()
        message = f"Applied {report.applied:,} label(s); {report.unchanged:,} unchanged."
        details = ""
        if report.errors:
            message += f"\n{len(report.errors):,} line(s) could not be used (see details)."
            details = "\n".join(f"line {line}: {text}" for line, text in report.errors)
        dialogs.show_report(self, "Labels imported", message, details)

    # ==================================================================== help
    def shortcut_rows(self) -> list[tuple[str, str]]:
        rows = [(a.shortcut().toString(QtGui.QKeySequence.NativeText), a.text().replace("…", ""))
                for a in self.actions() if not a.shortcut().isEmpty()]
        rows += [("R / L / P (on the map)", "Rectangle / lasso / pan drag mode"),
                 ("Shift-drag / Ctrl-drag (map)", "Add a rectangle / lasso to the selection"),
                 ("Esc (on the map)", "Clear the map selection"),
                 ("F (map or image)", "Fit the view"),
                 ("Wheel / drag (image)", "Zoom / pan; double-click fits"),
                 ("Arrow keys (grid)", "Move through the ranking")]
        return rows

    def show_shortcuts(self) -> None:
        dialogs.ShortcutSheet(self.shortcut_rows(), self).exec()

    def show_about(self) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            app_version = version("oddscope")
        except PackageNotFoundError:
            app_version = "development"
        project = self.model.project
        where = f"<p>Project: {project.root}<br>Encoder: {encoder_text(project)}</p>" if project else ""
        QtWidgets.QMessageBox.about(
            self, "About Oddscope",
            f"<h3>Oddscope {app_version}</h3><p>Find, label and explore anomalies in large image "
            f"collections.</p>{where}<p>Qt {QtCore.qVersion()} · BSD-3-Clause</p>")

    # ================================================================== layout
    def reset_layout(self) -> None:
        self.columns.setSizes(list(DEFAULT_COLUMNS))
        self.rows.setSizes(list(DEFAULT_ROWS))
        self.viewer.splitter.setSizes([520, 200])

    def _restore_layout(self) -> None:
        s = dialogs.app_settings()
        geometry = s.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        state = s.value("window/state")
        if state is not None:
            self.restoreState(state)
        for splitter, key in ((self.columns, "columns"), (self.rows, "rows"), (self.viewer.splitter, "viewer")):
            value = s.value(f"window/{key}")
            if value is not None:
                splitter.restoreState(value)
        self._colour_column = s.value("view/colour", "anomaly_score")

    def _save_layout(self) -> None:
        s = dialogs.app_settings()
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState())
        for splitter, key in ((self.columns, "columns"), (self.rows, "rows"), (self.viewer.splitter, "viewer")):
            s.setValue(f"window/{key}", splitter.saveState())
        s.setValue("view/colour", self._colour_column)
        s.sync()

    def closeEvent(self, event) -> None:
        if self._closed:
            return super().closeEvent(event)
        self._closed = True
        QtWidgets.QApplication.instance().focusChanged.disconnect(self._on_focus_changed)
        self._save_layout()
        self.neighbours.show_item(None)  # queued lookups are skipped
        self._neighbour_progress.cancel()  # and a running index build stops at its next chunk
        self.tasks.cancel_all()
        if self.thumbs is not None:
            self.thumbs.close()
        for pool in self.findChildren(QtCore.QThreadPool):  # nothing may still read the project...
            pool.waitForDone(30_000)
        self.model.close()  # ...when it closes
        super().closeEvent(event)
