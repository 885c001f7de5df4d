"""What the window says about its project outside the views: the status-bar labels and the banner."""

from __future__ import annotations

from PySide6 import QtGui, QtWidgets
from PySide6.QtCore import Qt

from oddscope.app.model import ProjectModel, encoder_text
from oddscope.core.project.layout import SKIPPED_REPORT
from oddscope.core.workflows.readiness import advice_if_not_analysed

ENCODER_TEXT_PX = 780  # the encoder label is elided to this width: the full text is in its tooltip


class StatusLabels:
    """The status bar's permanent labels: images (and skipped), labelled, encoder."""

    def __init__(self):
        self.items = QtWidgets.QLabel("No project")
        self.items.setToolTip(f"Images in the project: indexed / skipped (see {SKIPPED_REPORT} in the project)")
        self.labelled = QtWidgets.QLabel()
        self.labelled.setToolTip("Images you have scored or tagged")
        self.encoder = QtWidgets.QLabel()
        self.encoder.setObjectName("encoderLabel")
        self.encoder.setToolTip("Encoder and weights that computed this project's features")

    def show_loading(self, name: str) -> None:
        self.items.setText(f"Loading {name}…")

    def show_project(self, model: ProjectModel, waiting: str = "") -> None:
        """Counts and encoder of the model's project (``waiting``: a note after the labelled count)."""
        table = model.table
        if table is None:
            self.items.setText("No project")
            self.labelled.clear()
            self.encoder.clear()
            return
        ok = model.n_ok
        skipped = len(table) - ok
        self.items.setText(f"{len(table):,} images" + (f" ({skipped:,} skipped)" if skipped else ""))
        self.labelled.setText(f"{model.labelled_count():,} labelled{waiting}")
        full = f"Encoder: {encoder_text(model.project)}"
        short = full.split(" (")[0]  # the weights' name; file and checksum are in the tooltip
        metrics = QtGui.QFontMetrics(self.encoder.font())
        self.encoder.setText(metrics.elidedText(short, Qt.ElideRight, ENCODER_TEXT_PX))
        self.encoder.setToolTip(f"{full}\n(the encoder and weights that computed this project's features)")


def banner_text(model: ProjectModel) -> str:
    """Why labelling is off, or what to do with a project that has nothing to explore yet ("" otherwise)."""
    if model.read_only:
        return ("Read-only: another Oddscope is writing this project, so labelling is switched off here. "
                "Close it there and reopen this project to label.")
    if model.is_open and not model.can_label:
        return "A background task is writing the project (see the status bar): labelling resumes when it finishes."
    state = model.state
    if state is not None and not state.n_ranked:  # never analysed: say what to do
        return advice_if_not_analysed(model.project.root, state.table["status"], analysed=False) or ""
    return ""
