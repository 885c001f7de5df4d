"""Guidance in the app: a dock listing the project's feature spaces, adding and removing them, ranking in one.

A feature space (:mod:`oddscope.core.workflows.guidance`) is the encoder's
features with a nuisance erased (a metadata column, or tags with a prefix such
as ``pose:left``; LEACE or the non-linear head), with only the directions of the
user's 4-5 scores kept, or, for a CLIP project, with attributes described in words
removed or kept.
The panel lists the raw features first, then each space with what it removes
or keeps and the nuisance probe before and after (stored with the space when
it was fitted: the goal is chance).  Adding a space fits it and scores every
detector in it: a status-bar task in a child process (progress, Cancel) that
borrows the window's writer lock; the table is read again when it ends.
*Use* switches the ranking to the space's version of the current detector and
the neighbours strip to the space's features; the status bar says which space
is in use, and the map view shows the space's map while it is in use, where it has one (*Map* computes it:
a status-bar task in a child process, as adding).  *Compare* opens two spaces' top rankings side by side
(:mod:`oddscope.app.compare_spaces`).  Removal is final (adding the space again refits it).
"""

from __future__ import annotations

import functools

import pandas as pd
from PySide6 import QtCore, QtGui, QtWidgets
from PySide6.QtCore import Qt, Signal

from oddscope.app import dialogs, jobs
from oddscope.app.compare_spaces import CompareSpacesDialog
from oddscope.app.guidance_dialog import WORDS_TIP, AddSpaceDialog
from oddscope.app.model import ProjectModel
from oddscope.app.session import ProjectSession
from oddscope.core.models.registry import GUIDANCE_METHODS
from oddscope.core.project.layout import ENCODER, MAP_ARRAY, RAW_SPACE, space_name, split_space
from oddscope.core.project.table import is_metadata
from oddscope.core.workflows.guidance import INTERESTING_SCORE, words_reason
from oddscope.core.workflows.spaces import spaces

SHORTCUT = "G"
PROBE_TIP = ("How well a probe trained on the features still predicts the nuisance, before → after the erasure "
             "(3-fold cross-validated accuracy; R² for a numeric nuisance), for a linear and a small non-linear "
             "(MLP) probe. The goal is chance: then the space holds nothing of the nuisance, and a rare nuisance "
             "value no longer floods the top of the ranking.")
RELEVANT_TIP = ("A relevant-only space: the probes predict your 4-5 scores from the rest; they should stay high "
                "(the space keeps what you called interesting).")
DOCK_WIDTH = 430


def attribute_choices(table: pd.DataFrame, tags: list[str]) -> list[tuple[str, str]]:
    """``(attribute, label)`` a nuisance can be named by: the metadata columns, then the tag prefixes."""
    columns = [c for c in table.columns if is_metadata(c)]
    # project_table renames metadata that would read as computed to meta_<name>: guidance wants the stored name
    names = [c[len("meta_"):] if c.startswith("meta_") and not is_metadata(c[len("meta_"):]) else c for c in columns]
    prefixes = sorted({t.split(":", 1)[0] for t in tags if ":" in t and t.split(":", 1)[0] and t.split(":", 1)[1]})
    return [(n, f"metadata: {n}") for n in names] + [(p, f"tags: {p}:…") for p in prefixes]


def relevant_reason(table: pd.DataFrame) -> str:
    """Why relevant-only cannot be fitted on the labels so far ("" when it can)."""
    scores = table["label_score"].dropna()
    high = int((scores >= INTERESTING_SCORE).sum())
    if not high or high == len(scores):
        return (f"needs images you scored {INTERESTING_SCORE}-5 and images you scored 0-{INTERESTING_SCORE - 1} "
                f"(you have {high} and {len(scores) - high})")
    return ""


def encoder_key(project) -> str:
    """The key of the project's features ("" before its first analysis)."""
    return (ENCODER.read(project) or {}).get("key", "")




def _pair(spec: dict, key: str) -> str:
    if spec["probe_before"] is None or spec["probe_after"] is None:
        return "–"
    before, after = spec["probe_before"][key], spec["probe_after"][key]
    return "–" if before is None or after is None else f"{before:.2f} → {after:.2f}"


def space_lines(name: str, spec: dict) -> tuple[list[str], str]:
    """The panel's lines for the space ``name`` (name, what it does, probe before → after) and its tooltip."""
    entry = GUIDANCE_METHODS[spec["method"]]
    if spec["kind"] == "words":
        what = (f"ignores {', '.join(spec['nuisance_words']) or '–'} · keeps "
                f"{', '.join(spec['relevant_words']) or 'the rest'}")
        return [name, what, "probe: – (no attribute; `oddscope evaluate guidance` probes one)"], WORDS_TIP
    if spec["kind"] == "nuisance":
        size = "dimension(s)" if spec["method"] == "nonlinear" else "direction(s)"
        what = f"removes {spec['attribute']} ({spec['source']}) · {entry.label}, {spec['rank']} {size}"
        tip = f"{PROBE_TIP}\n\nMethod: {entry.description}; fitted on {spec['n_fit']:,} items."
    else:
        what = f"keeps what separates your {INTERESTING_SCORE}-5 scores · {spec['rank']} direction(s)"
        tip = f"{RELEVANT_TIP}\n\nFitted on {spec['n_fit']:,} labelled items."
    unit = " R²" if spec["probe_after"].get("kind") == "continuous" else ""
    probe = (f"probe{unit}: linear {_pair(spec, 'probe_linear')} · MLP {_pair(spec, 'probe_nonlinear')} · "
             f"chance {spec['probe_after']['probe_chance']:.2f}")
    return [name, what, probe], tip


class GuidancePanel(QtWidgets.QWidget):
    """The list of feature spaces (raw first, three lines each) and the Use, Add and Remove buttons."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.list = QtWidgets.QListWidget()
        self.list.setWordWrap(True)
        self.list.setSpacing(3)
        self.list.setToolTip(PROBE_TIP)
        self.add_button = QtWidgets.QPushButton("Add…")
        self.add_button.setToolTip("Add a feature space that ignores a nuisance (a metadata column or a tag "
                                   "prefix) or keeps only what you scored 4-5; runs in the background")
        self.remove_button = QtWidgets.QPushButton("Remove")
        self.remove_button.setToolTip("Remove the selected space with its scores, rankings and indexes")
        self.use_button = QtWidgets.QPushButton("Use")
        self.use_button.setToolTip("Rank (and find neighbours) in the selected space: the current detector's "
                                   "version in it; raw goes back (double-click does the same)")
        self.map_button = QtWidgets.QPushButton("Map")
        self.map_button.setToolTip("Compute the selected space's map in the background; the map view shows it "
                                   "while the space is in use")
        self.compare_button = QtWidgets.QPushButton("Compare…")
        self.compare_button.setToolTip("The top of a detector's ranking in two spaces side by side, with how far "
                                       "each item moved (from the scores already computed)")
        self.note = QtWidgets.QLabel()
        self.note.setWordWrap(True)
        self.note.setObjectName("guidanceNote")
        buttons = QtWidgets.QHBoxLayout()
        for button in (self.use_button, self.map_button, self.compare_button, self.add_button, self.remove_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.note)
        layout.addLayout(buttons)

    def sizeHint(self) -> QtCore.QSize:
        return QtCore.QSize(DOCK_WIDTH, 300)  # a dock opens this wide: every line of a space fits

    def fill(self, known: dict[str, dict], encoder: str, in_use: str | None) -> None:
        """Show the raw features and the spaces ``known`` (``{name: spec}``); ``in_use`` is marked."""
        selected = self.selected() if self.has_selection() else in_use
        self.list.clear()
        self._add(None, [RAW_SPACE, f"the encoder's own features ({encoder})",
                         "nothing removed: each space's probe 'before' is measured here"], PROBE_TIP)
        for name, spec in known.items():
            self._add(name, *space_lines(name, spec))
        self.mark_in_use(in_use)
        self.select(selected if selected in known else in_use)

    def _add(self, space: str | None, lines: list[str], tip: str) -> None:
        item = QtWidgets.QListWidgetItem("\n".join(lines))
        item.setData(Qt.UserRole, space)
        item.setToolTip(tip)
        self.list.addItem(item)

    def mark_in_use(self, space: str | None) -> None:
        """The space the ranking is in is shown in bold, "in use" after its name."""
        for row in range(self.list.count()):
            item = self.list.item(row)
            name, rest = item.text().split("\n", 1)
            name = name.removesuffix(" · in use")
            used = item.data(Qt.UserRole) == space
            item.setText(f"{name} · in use\n{rest}" if used else f"{name}\n{rest}")
            font = item.font()
            font.setBold(used)
            item.setFont(font)

    def spaces(self) -> list[str | None]:
        """The rows' spaces, raw (None) first."""
        return [self.list.item(r).data(Qt.UserRole) for r in range(self.list.count())]

    def selected(self) -> str | None:
        item = self.list.currentItem()
        return None if item is None else item.data(Qt.UserRole)

    def has_selection(self) -> bool:
        return self.list.currentItem() is not None

    def select(self, space: str | None) -> None:
        rows = self.spaces()
        if space in rows:
            self.list.setCurrentRow(rows.index(space))


class GuidanceController(QtCore.QObject):
    """The Guidance dock (View menu, G) and what its buttons do (see the module docstring)."""

    message = Signal(str, int)  # status-bar text, milliseconds shown
    space_changed = Signal(object)  # the feature space now in use (None: raw): the neighbours follow it

    def __init__(self, model: ProjectModel, session: ProjectSession, ranking_combo: QtWidgets.QComboBox,
                 host: QtWidgets.QMainWindow):
        super().__init__(host)
        self.model, self.session, self.ranking_combo, self.host = model, session, ranking_combo, host
        self.panel = GuidancePanel()
        self.dock = QtWidgets.QDockWidget("Guidance", host)
        self.dock.setObjectName("guidanceDock")  # its place and visibility are saved with the window's state
        self.dock.setWidget(self.panel)
        host.addDockWidget(Qt.RightDockWidgetArea, self.dock)
        self.dock.hide()
        self.toggle_action = self.dock.toggleViewAction()
        self.toggle_action.setText("Guidance panel")
        self.toggle_action.setShortcut(QtGui.QKeySequence(SHORTCUT))
        self.toggle_action.setShortcutContext(Qt.WindowShortcut)
        self.toggle_action.setToolTip(f"Feature spaces that ignore a nuisance or keep what is relevant ({SHORTCUT})")
        host.addAction(self.toggle_action)
        self.space_label = QtWidgets.QLabel()
        self.space_label.setToolTip("The feature space the ranking and the neighbours are in (Guidance panel, G)")
        self.add_dialog: AddSpaceDialog | None = None
        self.compare_dialog: CompareSpacesDialog | None = None
        self.space: str | None = None  # the space in use
        self.encoder = ""  # the key of the open project's features ("": not analysed, nothing to guide)

        p = self.panel
        p.add_button.clicked.connect(self.ask_add)
        p.remove_button.clicked.connect(self.ask_remove)
        p.compare_button.clicked.connect(self.compare)
        p.map_button.clicked.connect(lambda: self.compute_map(p.selected()))
        p.use_button.clicked.connect(lambda: self.use_space(p.selected()))
        p.list.itemDoubleClicked.connect(lambda item: self.use_space(item.data(Qt.UserRole)))
        p.list.currentItemChanged.connect(lambda *_: self.update_enabled())
        model.table_changed.connect(self.sync_space)
        model.labelling_changed.connect(lambda _: self.update_enabled())
        session.tasks.started.connect(lambda _: self.update_enabled())
        session.tasks.ended.connect(lambda _: self.update_enabled())

    def reset(self) -> None:
        """Reset layout: the dock goes back to the right, closed."""
        self.dock.setFloating(False)
        self.host.addDockWidget(Qt.RightDockWidgetArea, self.dock)
        self.dock.hide()

    # ============================================================== the list
    def refresh(self) -> None:
        """Fill the list from the project (after loading, and whenever a space was added or removed)."""
        project = self.model.project
        self.encoder = encoder_key(project) if project is not None else ""
        if project is None:
            self.panel.list.clear()
            self.space_label.clear()
            self.update_enabled()
            return
        self.panel.fill(spaces(project), self.encoder or "none yet", self.space)
        self.sync_space()
        self.show_space_map()  # a re-analysis drops the spaces' maps; an added map appears
        self.update_enabled()

    def sync_space(self) -> None:
        """The ranking chosen decides the space in use: mark it, say it, and move the neighbours to it."""
        if self.model.table is None:
            return
        space = split_space(self.ranking_combo.currentText() or self.model.ranking())[1]
        self.space_label.setText(f"Space: {space or RAW_SPACE}")
        self.panel.mark_in_use(space)
        if space != self.space:
            self.space = space
            self.space_changed.emit(space)
            self.show_space_map()

    def show_space_map(self) -> None:
        """The map view shows the map of the space in use where it has one, the raw map otherwise."""
        project = self.model.project
        xy = project.load_array(space_name(MAP_ARRAY, self.space)) if project is not None and self.space else None
        self.model.set_space_map(xy)

    def project_closing(self) -> None:
        for dialog in (self.add_dialog, self.compare_dialog):
            if dialog is not None:
                dialog.reject()
        self.space = None
        self.encoder = ""
        self.panel.list.clear()
        self.space_label.clear()

    def update_enabled(self) -> None:
        open_ = self.model.table is not None
        idle = not self.session.tasks.running("guidance")
        analysed = open_ and bool(self.encoder)
        writable = analysed and not self.model.read_only
        self.panel.add_button.setEnabled(writable and idle)
        self.panel.remove_button.setEnabled(writable and idle and self.panel.selected() is not None)
        self.panel.map_button.setEnabled(writable and idle and self.panel.selected() is not None)
        self.panel.use_button.setEnabled(open_ and self.panel.has_selection())
        self.panel.compare_button.setEnabled(open_ and len(self.panel.spaces()) > 1)
        if not analysed:
            self.panel.note.setText("Open an analysed project to guide it.")
        elif self.model.read_only:
            self.panel.note.setText("Read-only: spaces can be used, not added or removed.")
        elif not idle:
            self.panel.note.setText("Adding or removing a space (see the status bar)…")
        else:
            self.panel.note.setText("Probe: how well the nuisance is still predicted, before → after; the goal is "
                                    "chance. Double-click a space (or Use) to rank in it; raw goes back.")

    # ================================================================== use
    def use_space(self, space: str | None) -> None:
        """Rank by the current detector's version in ``space`` (None: raw), or the space's first detector."""
        if self.model.table is None:
            return
        rankings = self.model.rankings()
        base = split_space(self.ranking_combo.currentText() or self.model.ranking())[0]
        wanted = space_name(base, space)
        if wanted not in rankings:
            in_space = [r for r in rankings if split_space(r)[1] == space]
            if not in_space:
                self.message.emit(f"No ranking in {space or RAW_SPACE}", 5000)
                return
            wanted = in_space[0]
        self.ranking_combo.setCurrentText(wanted)  # the labelling controller re-ranks
        self.sync_space()
        self.panel.select(space)
        self.message.emit(f"Ranking by {wanted}: feature space {space or RAW_SPACE}", 6000)

    def compare(self) -> CompareSpacesDialog | None:
        """Open the Compare dialog: raw on the left, the selected space (or the first) on the right, the
        current ranking's detector."""
        if not self.panel.compare_button.isEnabled():
            return None
        names = [s for s in self.panel.spaces() if s is not None]
        selected = self.panel.selected()
        right = selected if selected is not None else names[0]
        detector = split_space(self.ranking_combo.currentText() or self.model.ranking())[0]
        if self.compare_dialog is not None:
            self.compare_dialog.reject()
        self.compare_dialog = CompareSpacesDialog(self.model.table, names, self.host.thumbs, None, right, detector,
                                                  parent=self.host)
        self.compare_dialog.item_chosen.connect(self.model.set_current)
        self.compare_dialog.show()
        return self.compare_dialog

    # ============================================================ add, remove
    def ask_add(self) -> AddSpaceDialog | None:
        """Open the Add dialog (window-modal; what it asks is added when it is accepted)."""
        if not self.panel.add_button.isEnabled():
            return None
        tags = self.model.all_tags()
        self.add_dialog = AddSpaceDialog(attribute_choices(self.model.table, tags), relevant_reason(self.model.table),
                                         words_reason((ENCODER.read(self.model.project) or {}).get("spec", "")),
                                         list(spaces(self.model.project)), self.host)
        self.add_dialog.accepted.connect(functools.partial(self._dialog_accepted, self.add_dialog))
        self.add_dialog.open()
        return self.add_dialog

    def _dialog_accepted(self, dialog: AddSpaceDialog) -> None:
        self.add_space(**dialog.values())

    def add_space(self, name: str, attribute: str | None, kind: str, **how):
        """Fit the space and score every detector in it: a status-bar task in a child process that borrows
        the writer lock (labelling pauses meanwhile); the table is read again when it ends.  ``how``: the
        ``method`` and a words space's phrases (:func:`~oddscope.core.workflows.guidance.add_space`)."""
        if self.session.busy_with_project("add a feature space"):
            return None
        root = self.model.project.root
        self.model.suspend_writing()
        task = self.session.run_task("guidance", f"Adding the feature space {name}",
                                     functools.partial(jobs.add_guided_space, root, name, attribute, kind, **how),
                                     functools.partial(self._added, name), in_process=True, on_done=self._ended)
        if task is None:
            self.model.resume_writing()
        return task

    def _added(self, name: str, spec: dict) -> None:
        probe = ("" if spec["probe_after"] is None else f": linear probe {_pair(spec, 'probe_linear')} "
                 f"(chance {spec['probe_after']['probe_chance']:.2f})")
        self.session.reload_table(f"Reading the scores of {name}",
                                  f"Added the feature space {name} in {spec['seconds']:.0f} s{probe}; Use ranks in it")

    def ask_remove(self) -> None:
        name = self.panel.selected()
        if name is None or self.model.read_only:
            return
        if not self.host.headless and not dialogs.ask_yes_no(
                self.host, "Remove feature space",
                f"Remove the feature space {name!r} with its scores, rankings and neighbour indexes?\n\n"
                "Removal is final (Ctrl+Z does not bring it back); adding it again refits it."):
            return
        self.remove_space(name)

    def remove_space(self, name: str):
        """Remove the space in the background; a ranking in it falls back to the raw one."""
        if self.session.busy_with_project("remove a feature space"):
            return None
        root = self.model.project.root
        self.model.suspend_writing()
        task = self.session.run_task("guidance", f"Removing the feature space {name}",
                                     functools.partial(jobs.remove_guided_space, root, name),
                                     lambda _: self.session.reload_table("Reading the rankings",
                                                                         f"Removed the feature space {name}"),
                                     on_done=self._ended)
        if task is None:
            self.model.resume_writing()
        return task

    def compute_map(self, name: str | None):
        """Compute the space's map in the background (UMAP: never on the GUI thread); shown once it is in use."""
        if name is None or self.session.busy_with_project("compute a map"):
            return None
        root = self.model.project.root
        self.model.suspend_writing()
        task = self.session.run_task("guidance", f"Computing the map of {name}",
                                     functools.partial(jobs.map_guided_space, root, name),
                                     lambda seconds: self.message.emit(
                                         f"Computed the map of {name} in {seconds:.0f} s; Use shows it", 6000),
                                     in_process=True, on_done=self._ended)
        if task is None:
            self.model.resume_writing()
        return task

    def _ended(self, _outcome: str) -> None:
        if self.session.closed or not self.model.is_open:
            return
        self.model.resume_writing()
        self.refresh()
