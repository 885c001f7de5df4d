"""The main window: it assembles the map, ranking grid, image viewer and neighbours, the menus and the actions.

The work behind them lives elsewhere: :class:`~oddscope.app.session.ProjectSession`
(the project's life cycle and background work), :class:`~oddscope.app.labelling.LabellingController`
(labels and re-ranking), :class:`~oddscope.app.view_sync.ViewSync` (the views
in step with the model), :class:`~oddscope.app.pixel_maps.PixelMapsController` (the anomaly map
over the viewer) and :class:`~oddscope.app.guidance_panel.GuidanceController` (the Guidance dock).
Labelling keys (0-5, T, N, P, Ctrl+Z), M (the anomaly map) and G (the Guidance panel) are window-wide
so the hand can stay on the keyboard whatever has focus.  Long work runs as
background tasks with progress and Cancel in the status bar.
"""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets
from PySide6.QtCore import Qt

from oddscope.app import dialogs
from oddscope.app.guidance_panel import GuidanceController
from oddscope.app.labelling import LabellingController
from oddscope.app.mapview import MapView
from oddscope.app.model import ProjectModel
from oddscope.app.neighbours import NeighboursPanel
from oddscope.app.pixel_maps import PixelMapsController
from oddscope.app.ranking import RankingView
from oddscope.app.ranking_table import SCORE_COLOURS
from oddscope.app.session import ProjectSession
from oddscope.app.status import StatusLabels, banner_text
from oddscope.app.theme import apply_theme, panel
from oddscope.app.view_sync import ViewSync
from oddscope.app.viewer import ImageViewer
from oddscope.app.window_layout import DEFAULT_SIZE, WindowLayout
from oddscope.app.worker import TaskBar, TaskManager


class MainWindow(QtWidgets.QMainWindow):
    """``restore_layout=False`` starts from the default size and layout (scripted screenshots)."""

    def __init__(self, parent=None, restore_layout: bool = True):
        super().__init__(parent)
        self.setWindowTitle("Oddscope")
        self.setObjectName("MainWindow")
        apply_theme(QtWidgets.QApplication.instance())
        self.model = ProjectModel(self)
        self.tasks = TaskManager(self)
        self.model.use_lane(self.tasks.lane("table"))
        self.headless = False  # scripted runs: errors are collected in .errors, never shown in a modal dialog
        self.errors: list[str] = []

        self.map_view = MapView()
        self.ranking = RankingView()
        self.ranking.use_lane(self.tasks.lane("filter"))
        self.viewer = ImageViewer()
        self.neighbours = NeighboursPanel(lane=self.tasks.lane("neighbours"))
        self.banner = QtWidgets.QLabel()
        self.banner.setObjectName("banner")
        self.banner.setWordWrap(True)
        self.banner.hide()
        self.colour_combo = QtWidgets.QComboBox()
        self.colour_combo.setToolTip("What colours the map: a score, your labels, tags, clusters or metadata")
        self.colour_combo.setMinimumWidth(190)
        self.ranking_combo = QtWidgets.QComboBox()
        self.ranking_combo.setToolTip("The active ranking: which detector (or learned ranking) orders the grid")
        self.ranking_combo.setMinimumWidth(150)
        self.session = ProjectSession(self.model, self.tasks, self)
        self.views = ViewSync(self.model, self.map_view, self.ranking, self.viewer, self.neighbours,
                              self.colour_combo, self.tasks.lane("interactive"), self.session, self)
        self.labelling = LabellingController(self.model, self.session, self.ranking, self.neighbours,
                                             self.ranking_combo, self.colour_combo, self)
        self.pixel_maps = PixelMapsController(self.model, self.session, self.viewer, self)
        self.guidance = GuidanceController(self.model, self.session, self.ranking_combo, self)

        self.columns = QtWidgets.QSplitter(Qt.Horizontal)
        self.columns.addWidget(panel("Map", self.map_view,
                                     "Every image placed by similarity (UMAP). Drag with R or L to select"))
        self.columns.addWidget(panel("Ranking", self.ranking, "Images in the order of the active ranking"))
        self.columns.addWidget(panel("Image", self.viewer, "The current image, its metadata and scores"))
        self.rows = QtWidgets.QSplitter(Qt.Vertical)
        self.rows.addWidget(self.columns)
        self.rows.addWidget(panel("", self.neighbours))  # the panel has its own title bar
        for view, width in zip((self.map_view, self.ranking, self.viewer), (200, 300, 240)):
            view.setMinimumWidth(width)
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
        self.layout_keeper = WindowLayout(self, self.columns, self.rows, self.viewer.splitter)

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
        self.open_images_action = a("Open images folder…", self.session.ask_index_folder, "Ctrl+Shift+O",
                                    "Index a folder of images into a new project (runs in the background)")
        self.open_project_action = a("Open project…", self.session.ask_open_project, QtGui.QKeySequence.Open,
                                     "Open an existing Oddscope project folder")
        self.export_action = a("Export table…", self.session.ask_export, "Ctrl+E",
                               "Write the ranked table (scores, map, clusters, labels, metadata) to CSV or Parquet")
        self.import_action = a("Import labels…", self.session.ask_import_labels, None,
                               "Read scores and tags from a CSV (columns path, score and/or tags)")
        self.quit_action = a("Quit", self.close, QtGui.QKeySequence.Quit, "Close Oddscope (labels are already saved)")
        self.undo_action = a("Undo label", self.labelling.undo, QtGui.QKeySequence("Ctrl+Z"),
                             "Undo the last label change and go back to that image (Ctrl+Z)")
        self.redo_action = a("Redo label", self.labelling.redo, QtGui.QKeySequence("Ctrl+Shift+Z"),
                             "Redo the label change just undone (Ctrl+Shift+Z)")
        self.score_actions = [
            a(f"Score {n}", lambda _=False, n=n: self.labelling.label_current(n), str(n),
              f"Give relevance score {n} to the current image and go to the next (key {n}). "
              "0 = junk or artefact, 5 = exactly what I am looking for")
            for n in range(6)]
        self.tag_action = a("Tag…", self.labelling.ask_tag, "T", "Add a tag to the current image (T)")
        self.next_action = a("Next image", self.labelling.next_item, "N", "Go to the next image in the ranking (N)")
        self.previous_action = a("Previous image", self.labelling.previous_item, "P",
                                 "Go to the previous image in the ranking (P)")
        self.more_like_this_action = a("More like this", self.labelling.more_like_this, "Shift+M",
                                       "Select the current image's nearest neighbours on the map (Shift+M)")
        self.anomaly_map_action = self.pixel_maps.toggle_action  # M
        self.guidance_action = self.guidance.toggle_action  # G
        self.reset_layout_action = a("Reset layout", self.reset_layout, None, "Put every panel back where it was")
        self.settings_action = a("Settings…", self.ask_settings, "Ctrl+,",
                                 "Encoder, detectors, k and neighbour metric; re-runs the analysis in the background")
        self.shortcuts_action = a("Keyboard shortcuts", self.show_shortcuts, QtGui.QKeySequence("F1"),
                                  "Every keyboard shortcut (F1)")
        self.about_action = a("About Oddscope", self.show_about, None, "Version, encoder and weights in use")
        self.relearn_action = a("Re-rank now", self.labelling.relearn_now, "R",
                                "Refit the active-learning ranking on every label so far (R)")
        self.relearn_choice_actions = self.labelling.relearn_choice_actions

    def _make_toolbar(self) -> None:
        bar = self.addToolBar("Main")
        bar.setObjectName("mainToolbar")
        bar.setMovable(False)
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
        self.recent_menu.aboutToShow.connect(lambda: self.session.fill_recent_menu(self.recent_menu))
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
        view_menu.addAction(self.anomaly_map_action)
        view_menu.addAction(self.guidance_action)
        view_menu.addSeparator()
        view_menu.addAction(self.reset_layout_action)
        settings_menu = menu.addMenu("&Settings")
        settings_menu.addAction(self.settings_action)
        help_menu = menu.addMenu("&Help")
        help_menu.addAction(self.shortcuts_action)
        help_menu.addAction(self.about_action)
        for m in (file_menu, edit_menu, label_menu, view_menu, settings_menu, help_menu):
            m.setToolTipsVisible(True)

    def _make_status_bar(self) -> None:
        self.status_labels = StatusLabels()
        self.items_label = self.status_labels.items
        self.labelled_label = self.status_labels.labelled
        self.encoder_label = self.status_labels.encoder
        self.task_bar = TaskBar(self.tasks)
        for widget in (self.task_bar, self.items_label, self.labelled_label, self.guidance.space_label,
                       self.encoder_label):
            self.statusBar().addPermanentWidget(widget)

    def _connect(self) -> None:
        m = self.model
        m.loaded.connect(self._on_loaded)
        m.table_changed.connect(self._update_status)
        m.labels_changed.connect(self.labelling.on_labels_changed)  # counts toward a re-rank first...
        m.labels_changed.connect(self.views.on_labels_changed)
        m.labels_changed.connect(self._update_status)  # ...so the status says how many labels wait
        m.current_changed.connect(lambda _: self._update_enabled())
        m.labelling_changed.connect(lambda _: self._update_enabled())
        for source in (self.session, self.labelling, self.pixel_maps, self.guidance):
            source.message.connect(self.statusBar().showMessage)
        self.session.changed.connect(self._on_session_changed)
        self.session.closing.connect(self.views.project_closing)
        self.session.closing.connect(self.pixel_maps.project_closing)
        self.session.closing.connect(self.guidance.project_closing)
        self.session.features_changed.connect(self.views.set_neighbour_source)
        self.session.reanalysed.connect(self.labelling.features_changed)
        self.session.reanalysed.connect(self.views.fill_colour_choices)
        self.session.reanalysed.connect(self.guidance.refresh)  # after the ranking choices are filled again
        self.guidance.space_changed.connect(self.views.set_neighbour_space)
        self.ranking_combo.currentTextChanged.connect(self.labelling.on_ranking_choice)
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

    # ===================================================== the parts, as the window
    @property
    def learner(self):
        """The active learner (benchmarks and tests watch its ``updated`` signal)."""
        return self.labelling.learner

    @property
    def thumbs(self):
        return self.views.thumbs

    def open_project(self, root) -> bool:
        return self.session.open_project(root)

    def index_folder(self, images, project_dir) -> None:
        self.session.index_folder(images, project_dir)

    def last_project(self) -> str | None:
        return self.session.last_project()

    def recent_projects(self) -> list[str]:
        return self.session.recent_projects()

    def ask_settings(self) -> None:
        before = dialogs.analysis_settings()
        dialog = dialogs.SettingsDialog(before, self)
        if dialog.exec() != QtWidgets.QDialog.Accepted:
            return
        after = dialog.values()
        dialogs.save_analysis_settings(after)
        self.apply_settings(before, after)

    def apply_settings(self, before: dict, after: dict) -> None:
        """Re-run what the changed settings affect, in the background; the metric applies at once."""
        self.session.apply_settings(before, after)
        self.views.apply_metric(after["metric"])

    def show_error(self, title: str, message: str, details: str = "") -> None:
        if self.headless:
            self.errors.append(f"{title}: {message}")
            self.statusBar().showMessage(f"{title}: {message}")
        else:
            dialogs.show_error(self, title, message, details)

    def _on_loaded(self) -> None:
        self.session.loaded()
        self.labelling.project_loaded()
        self.pixel_maps.project_loaded()
        self.guidance.refresh()
        self.views.project_loaded()
        self._update_status()
        self._update_title()
        self._update_enabled()

    def _on_session_changed(self) -> None:
        """Loading began or ended."""
        if self.session.loading is not None:
            self.status_labels.show_loading(self.session.loading)
        else:
            self._update_status()
        self._update_enabled()

    def is_ready(self) -> bool:
        """Loaded, idle, the current image and the first thumbnails drawn (for scripted screenshots)."""
        if (self.model.table is None or self.session.loading is not None or self.views.first_item_pending
                or self.tasks.running("load") or self.model.busy or self.ranking.filtering):
            return False
        if self.model.current is not None and not self.viewer.is_settled():
            return False
        if self.neighbours.status.text().startswith("searching"):
            return False
        visible = self.ranking.visible_ids()[:12]
        paths = self.model.table["path"]
        return all(self.thumbs.get(int(i), paths.at[int(i)]) is not None for i in visible)

    # ================================================================ state shown
    def _update_status(self) -> None:
        self.status_labels.show_project(self.model, self.labelling.waiting_text())

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
        self.anomaly_map_action.setEnabled(has_project)
        self.guidance.update_enabled()
        self.export_action.setEnabled(has_project and not self.tasks.running("export"))
        self.import_action.setEnabled(can_label)
        self.settings_action.setEnabled(has_project and not self.model.read_only)
        self.colour_combo.setEnabled(has_project)
        self.ranking_combo.setEnabled(has_project)
        self._update_banner()

    def _update_banner(self) -> None:
        text = banner_text(self.model)
        self.banner.setText(text)
        self.banner.setVisible(bool(text))

    # ==================================================================== help
    def shortcut_rows(self) -> list[tuple[str, str]]:
        return dialogs.shortcut_rows(self.actions())

    def show_shortcuts(self) -> None:
        dialogs.ShortcutSheet(self.shortcut_rows(), self).exec()

    def show_about(self) -> None:
        dialogs.show_about(self, self.model.project)

    # ================================================================== layout
    def reset_layout(self) -> None:
        self.layout_keeper.reset()
        self.guidance.reset()

    def _restore_layout(self) -> None:
        settings = dialogs.app_settings()
        self.layout_keeper.restore(settings)
        self.views.colour_column = settings.value("view/colour", "anomaly_score")

    def _save_layout(self) -> None:
        settings = dialogs.app_settings()
        self.layout_keeper.save(settings)
        settings.setValue("view/colour", self.views.colour_column)
        settings.sync()

    def closeEvent(self, event) -> None:
        if self.session.closed:
            return super().closeEvent(event)
        self.session.closed = True
        QtWidgets.QApplication.instance().focusChanged.disconnect(self._on_focus_changed)
        self._save_layout()
        self.views.shutdown()
        self.tasks.cancel_all()
        for pool in self.findChildren(QtCore.QThreadPool):  # nothing may still read the project...
            pool.waitForDone(30_000)
        self.model.close()  # ...when it closes
        super().closeEvent(event)
