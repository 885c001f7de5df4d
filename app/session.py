"""The project session: opening, closing and updating the window's project, and the work it runs meanwhile.

The window holds one project at a time through :class:`~oddscope.app.model.ProjectModel`.
This owns its life cycle: open (writable, or read-only when another process
writes it), read its table in the background, re-index or re-analyse it in a
child process that borrows the writer lock, import labels, export the table,
and remember recent projects.  The work itself is in :mod:`oddscope.app.jobs`
(looked up there at call time, so tests can stand in for it).
"""

from __future__ import annotations

import functools
from pathlib import Path

from PySide6 import QtCore, QtWidgets
from PySide6.QtCore import Signal

from oddscope.app import dialogs, jobs
from oddscope.app.model import ProjectModel
from oddscope.app.table_state import load_table
from oddscope.app.worker import TaskManager
from oddscope.core.project.layout import SKIPPED_REPORT, ProjectLayout
from oddscope.core.project.store import Project, ProjectError, ProjectLocked

MAX_RECENT = 8
# Larger tables are read in a child process: building them holds the GIL in long C calls (SQLite rows,
# Arrow strings), which would freeze the window for seconds; smaller ones are not worth its start-up (~1 s)
TABLE_IN_PROCESS_ITEMS = 100_000
# tasks that read or write the open project (pixel_*: the anomaly map model's fit and corrections; guidance:
# adding or removing a feature space)
PROJECT_TASKS = ("load", "analyse", "import", "pixel_fit", "pixel_correct", "guidance")


class ProjectSession(QtCore.QObject):
    """Open, close, re-analyse, import into and export the window's project, in the background.

    ``host`` is the main window: the parent of its dialogs, and it has
    ``headless`` (never block in a dialog) and ``show_error(title, message, details)``.
    """

    message = Signal(str, int)  # status-bar text, milliseconds shown
    changed = Signal()  # loading began or ended: actions and status are refreshed
    closing = Signal()  # the project is about to close: views let go of it
    features_changed = Signal(object)  # the project at this root has new features
    reanalysed = Signal()  # the model holds the table of a new analysis

    def __init__(self, model: ProjectModel, tasks: TaskManager, host: QtWidgets.QWidget):
        super().__init__(host)
        self.model = model
        self.tasks = tasks
        self.host = host
        self.loading: str | None = None  # name of the project being read, None when not loading
        self.closed = False  # the window closed: work that ends now leaves the project alone

    # ============================================================ recent projects
    def last_project(self) -> str | None:
        """The project open at the end of the last session, if it still exists."""
        path = dialogs.app_settings().value("last_project", None)
        return path if path and ProjectLayout(path).is_project() else None

    def recent_projects(self) -> list[str]:
        value = dialogs.app_settings().value("recent_projects", [])
        value = [value] if isinstance(value, str) else list(value or [])
        return [p for p in value if ProjectLayout(p).is_project()]

    def fill_recent_menu(self, menu: QtWidgets.QMenu) -> None:
        """File > Recent projects, filled as it opens (a project may have gone meanwhile)."""
        menu.clear()
        for path in self.recent_projects():
            action = menu.addAction(path)
            action.triggered.connect(lambda _=False, p=path: self.open_project(p))
        if menu.isEmpty():
            menu.addAction("No recent projects").setEnabled(False)

    def _remember_project(self, root: Path) -> None:
        s = dialogs.app_settings()
        recent = [str(root)] + [p for p in self.recent_projects() if p != str(root)]
        s.setValue("recent_projects", recent[:MAX_RECENT])
        s.setValue("last_project", str(root))

    # ==================================================================== opening
    def ask_open_project(self) -> None:
        path = QtWidgets.QFileDialog.getExistingDirectory(self.host, "Open Oddscope project")
        if path:
            self.open_project(path)

    def open_project(self, root) -> bool:
        """Open ``root`` (writable, or read-only if another process writes it) and load it in the background."""
        if self.busy_with_project("open another project"):
            return False
        root = Path(root).resolve()
        try:
            try:
                project = Project.open(root, writable=True)
            except ProjectLocked as err:
                if not self.host.headless and not dialogs.ask_yes_no(
                        self.host, "Project in use",
                        f"{err}\n\nOpen it read-only? You can browse, search and export, but not label."):
                    return False
                project = Project.open(root, writable=False)
        except ProjectError as err:
            self.host.show_error("Cannot open project", str(err))
            return False
        self.close_project()
        self.loading = root.name
        self.tasks.run("load", f"Opening {root.name}", load_table, root,
                       in_process=project.n_items > TABLE_IN_PROCESS_ITEMS,
                       on_finished=lambda table: self.model.set_loaded(project, table),
                       on_failed=self._load_failed,
                       on_done=functools.partial(self._load_ended, project))
        self.changed.emit()
        return True

    def loaded(self) -> None:
        """The model has the project: remember it for the next start."""
        self.loading = None
        self._remember_project(self.model.project.root)

    def _load_ended(self, project: Project, outcome: str) -> None:
        """Opening failed or was cancelled: let go of the project (and its writer lock)."""
        if outcome == "finished":
            return
        project.close()
        if outcome == "cancelled":
            self.loading = None
            self.changed.emit()

    def _load_failed(self, message: str, details: str) -> None:
        self.loading = None
        self.changed.emit()
        self.host.show_error("Cannot open project", message, details)

    def close_project(self) -> None:
        self.closing.emit()
        self.model.close()

    def busy_with_project(self, what: str) -> bool:
        """True (and says so) while a task reads or writes the open project."""
        running = [t for t in self.tasks.running() if t.kind in PROJECT_TASKS]
        if running and self.host.headless:
            self.host.show_error("Busy", f"Cannot {what} while “{running[0].title}” runs.")
        elif running:
            QtWidgets.QMessageBox.information(
                self.host, "Busy", f"Cannot {what} while “{running[0].title}” runs. Wait for it or press Cancel.")
        return bool(running)

    def run_task(self, kind: str, title: str, fn, on_finished, *args, **kwargs):
        """Run ``fn`` as a background task; failures are shown, a Cancel or a refusal is said in the status bar."""
        task = self.tasks.run(kind, title, fn, *args, on_finished=on_finished,
                              on_failed=lambda m, d: self.host.show_error(f"{title} failed", m, d),
                              on_cancelled=lambda: self.message.emit(f"{title}: cancelled", 5000),
                              **kwargs)
        if task is None:
            self.message.emit(f"“{title}” is already running", 4000)
        return task

    # ========================================================= indexing, analysis
    def ask_index_folder(self) -> None:
        images = QtWidgets.QFileDialog.getExistingDirectory(self.host, "Images folder to index")
        if not images:
            return
        project = QtWidgets.QFileDialog.getExistingDirectory(
            self.host, "Project folder (new or empty; or an existing project to add these images to)")
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
            skipped = f"; {len(summary['skipped'])} skipped (see {SKIPPED_REPORT})" if summary["skipped"] else ""
            self.message.emit(f"Indexed {summary['n_items']:,} images{skipped}", 8000)
            self.open_project(project_dir)

        self.run_task("index", f"Indexing {Path(images).name}",
                      functools.partial(jobs.index_new_project, project_dir, images, values), done, in_process=True)

    def apply_settings(self, before: dict, after: dict) -> None:
        """Re-run what the changed encoder, detectors or k affect, in the background."""
        if (after["encoder"], after["weights"]) != (before["encoder"], before["weights"]):
            self._update_open_project("Computing features", None, after, reindex=True)
        elif (after["detectors"], after["k"]) != (before["detectors"], before["k"]):
            self._update_open_project("Re-scoring", None, after, reindex=False)

    def _update_open_project(self, title: str, images, values: dict, reindex: bool) -> None:
        """Re-index or re-analyse the open project in a child process, which takes the writer lock
        meanwhile (labelling pauses, browsing goes on); then read the new table."""
        if self.busy_with_project(title.lower()):
            return
        root = self.model.project.root
        self.model.suspend_writing()
        task = self.run_task("analyse", title, functools.partial(jobs.update_project, root, images, values, reindex),
                             None, in_process=True, on_done=self._analysis_ended)
        if task is None:
            self.model.resume_writing()

    def _analysis_ended(self, outcome: str) -> None:
        if self.closed or not self.model.is_open:
            return
        self.model.resume_writing()
        if outcome == "finished":
            self.features_changed.emit(self.model.project.root)
            self.reload_table("Reading the new analysis", "Analysis updated")

    def reload_table(self, title: str, done: str) -> None:
        """Read the open project's table again in the background (new scores or rankings), then say ``done``."""
        self.run_task("load", title, load_table, functools.partial(self._table_reloaded, done),
                      self.model.project.root, in_process=self.model.project.n_items > TABLE_IN_PROCESS_ITEMS)

    def _table_reloaded(self, done: str, table) -> None:
        self.model.set_table(table)
        self.reanalysed.emit()
        self.message.emit(done, 5000)

    # ============================================================ import, export
    def ask_export(self) -> None:
        default = str(Path(QtCore.QDir.homePath()) / f"{self.model.project.root.name}.csv")
        path, chosen = QtWidgets.QFileDialog.getSaveFileName(self.host, "Export table", default,
                                                             "CSV (*.csv);;Parquet (*.parquet)")
        if path:
            if Path(path).suffix.lower() not in (".csv", ".parquet"):
                path += ".parquet" if "parquet" in chosen.lower() else ".csv"
            self.export_table(path)

    def export_table(self, path):
        """Write the table in the background, from a read-only connection of its own."""
        work = functools.partial(jobs.export_table_to, self.model.project.root, path)
        return self.run_task("export", "Exporting", work,
                             lambda out: self.message.emit(f"Exported the table to {out}", 8000))

    def ask_import_labels(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self.host, "Import labels", "", "CSV (*.csv);;All files (*)")
        if path:
            self.import_labels(path)

    def import_labels(self, path):
        """Import in the background; the model lends its writer lock to the import meanwhile."""
        if self.busy_with_project("import labels"):
            return None
        root = self.model.project.root
        self.model.suspend_writing()
        task = self.run_task("import", "Importing labels", functools.partial(jobs.import_labels_into, root, path),
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
        dialogs.show_report(self.host, "Labels imported", message, details)
