"""The labelling controller: scores, tags, undo/redo, moving through the ranking, and the re-rank policy.

Labels go to the model (which stores them at once).  With an active-learning
ranking chosen, every N label changes (the user's choice, 0 = only on R) refit
it in the background through :class:`~oddscope.app.learning.ActiveLearner`;
the method is prepared once per project as a task with progress and Cancel.
A refitted ranking is stored by the core's
:class:`~oddscope.core.workflows.active_session.ActiveSession`, as the CLI stores it.
"""

from __future__ import annotations

import functools
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets
from PySide6.QtCore import Signal

from oddscope.app import dialogs, jobs
from oddscope.app.learning import ActiveLearner
from oddscope.app.model import ProjectModel
from oddscope.app.neighbours import NeighboursPanel
from oddscope.app.ranking import RankingView
from oddscope.app.session import ProjectSession
from oddscope.core.models.registry import RANKERS
from oddscope.core.workflows.active_session import ActiveSession

# How often an active-learning ranking refits on the labels: the user's choice (Label > Re-rank), 0 = on request
RELEARN_CHOICES = ((1, "After every label"), (5, "After every 5 labels"), (10, "After every 10 labels"),
                   (0, "Only when I press R"))


class LabellingController(QtCore.QObject):
    """Labels the current image and keeps an active-learning ranking up to date with the labels."""

    message = Signal(str, int)  # status-bar text, milliseconds shown

    def __init__(self, model: ProjectModel, session: ProjectSession, ranking: RankingView,
                 neighbours: NeighboursPanel, ranking_combo: QtWidgets.QComboBox,
                 colour_combo: QtWidgets.QComboBox, host: QtWidgets.QWidget):
        super().__init__(host)
        self.model = model
        self.session = session
        self.ranking = ranking
        self.neighbours = neighbours
        self.ranking_combo = ranking_combo
        self.colour_combo = colour_combo
        self.host = host  # parent of the tag dialog
        self.learner = ActiveLearner(self, lane=session.tasks.lane("learner"))
        self.learner.updated.connect(self._on_learned)
        self.learner.failed.connect(lambda message: self.message.emit(message, 8000))
        self.relearn_every = int(dialogs.app_settings().value("relearn_every", 1))
        self.labels_waiting = 0  # label changes not yet used by the active-learning ranking
        self._prepared_session: ActiveSession | None = None  # the learner's; it stores what the learner fits
        self.relearn_choice_actions = QtGui.QActionGroup(self)  # Label > Re-rank: how often
        for every, text in RELEARN_CHOICES:
            action = QtGui.QAction(text, self.relearn_choice_actions, checkable=True)
            action.setData(every)
            action.setToolTip(f"When an active-learning ranking (oddscope, neighbourscore, protege) refits: "
                              f"{text.lower()}")
            action.setChecked(every == self.relearn_every)
            action.triggered.connect(lambda _=False, n=every: self.set_relearn_every(n))

    def project_loaded(self) -> None:
        """Another project: no label waits for its ranking yet."""
        self.labels_waiting = 0
        self.features_changed()

    def features_changed(self) -> None:
        """New features or a new project: forget the prepared ranking and fill the ranking choices afresh."""
        self.learner.reset()
        self._prepared_session = None
        self.ranking_combo.blockSignals(True)
        self.ranking_combo.clear()
        self.ranking_combo.addItems(self.model.rankings())
        self.ranking_combo.setCurrentText(self.model.ranking())
        self.ranking_combo.blockSignals(False)

    # ================================================================== labelling
    def label_current(self, score: int) -> None:
        """Give ``score`` to the current image and move to the next one in the grid's visible order."""
        item_id = self.model.current
        if item_id is None or not self._label_guard():
            return
        self.model.set_label(item_id, score)
        self.message.emit(f"Scored {Path(self.model.row(item_id)['path']).name}: {score}", 4000)
        self.next_item()

    def ask_tag(self) -> None:
        item_id = self.model.current
        if item_id is None or not self._label_guard():
            return
        tag = dialogs.ask_tag(self.host, self.model.all_tags())
        if tag:
            self.model.add_tag(item_id, tag)
            self.message.emit(f"Tagged {Path(self.model.row(item_id)['path']).name}: {tag}", 4000)

    def undo(self) -> None:
        self._step_history(self.model.undo, "undo", "Undid")

    def redo(self) -> None:
        self._step_history(self.model.redo, "redo", "Redid")

    def _step_history(self, step, verb: str, done: str) -> None:
        """Undo or redo one label change and show the item it touched."""
        if not self._label_guard():
            return
        item_id = step()
        if item_id is None:
            self.message.emit(f"Nothing to {verb}", 3000)
            return
        self.model.set_current(item_id)
        self.message.emit(f"{done} the label of {Path(self.model.row(item_id)['path']).name}", 4000)

    def _label_guard(self) -> bool:
        if self.model.can_label:
            return True
        self.message.emit(
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
            self.message.emit("The neighbours of this image are still being searched", 3000)

    # ================================================================= re-ranking
    def on_labels_changed(self, _ids) -> None:
        """Count the change; refit once ``relearn_every`` of them have come in."""
        if self.model.ranking() in RANKERS:
            self.labels_waiting += 1
            if 0 < self.relearn_every <= self.labels_waiting:
                self._relearn(self.model.ranking())

    def waiting_text(self) -> str:
        """The status bar's note of labels the ranking has not learned from yet ("" when none)."""
        if self.labels_waiting and self.model.ranking() in RANKERS:
            return f" · {self.labels_waiting} not yet used for re-ranking (R)"
        return ""

    def on_ranking_choice(self, name: str) -> None:
        if name and self.model.table is not None and name != self.model.ranking():
            self.colour_combo.setItemText(0, f"anomaly score ({name})")
            if name in RANKERS:
                self._relearn(name)
            else:
                self.model.set_ranking(name)

    def set_relearn_every(self, every: int) -> None:
        """Refit after every ``every`` label changes (0: only on request); remembered across sessions."""
        self.relearn_every = int(every)
        dialogs.app_settings().setValue("relearn_every", self.relearn_every)
        for action in self.relearn_choice_actions.actions():
            action.setChecked(action.data() == self.relearn_every)
        if self.labels_waiting and 0 < self.relearn_every <= self.labels_waiting:
            self.relearn_now()

    def relearn_now(self) -> None:
        method = self.model.ranking() if self.model.table is not None else None
        if method not in RANKERS:
            self.message.emit("Re-ranking learns from your labels: choose an active-learning ranking "
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
            self.session.run_task("prepare", f"Preparing the {method} ranking",
                                  functools.partial(jobs.prepare_session, root, method),
                                  lambda session: self._prepared(root, method, session),
                                  on_done=self._preparation_ended)
            return  # a preparation already running re-ranks with the method chosen when it ends
        self.labels_waiting = 0
        self.message.emit(f"Re-ranking with {method}…", 0)
        self.learner.request(self.model.project.root, method, self.model.project.labels())

    def _prepared(self, root, method: str, session: ActiveSession) -> None:
        if self.model.table is not None and self.model.project.root == root:  # not another project meanwhile
            self._prepared_session = session
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
        prepared = self._prepared_session
        if self.model.can_label and prepared is not None and prepared.method == method:
            prepared.save(self.model.project, scores, relevance)  # not while the writer lock is lent out
        self.model.apply_ranking(method, scores, relevance)
        labelled = int(self.model.table["label_score"].notna().sum())
        self.message.emit(f"Re-ranked with {method} on {labelled} label(s) in {seconds * 1000:.0f} ms", 5000)
