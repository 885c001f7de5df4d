"""The dialog that adds a feature space: what to ignore or keep, the method, the space's name.

Options that cannot be used (relevant-only without enough labels, words without a CLIP encoder, a method
whose package is missing) are shown disabled with the reason, in their text and tooltip.
"""

from __future__ import annotations

from PySide6 import QtWidgets
from PySide6.QtCore import Qt

from oddscope.core.models.registry import GUIDANCE_METHODS
from oddscope.core.workflows.guidance import ERASERS, INTERESTING_SCORE, WORDS_METHOD
from oddscope.core.workflows.spaces import check_space_name

WORDS_TIP = ("Attributes in words (CLIP projects): the CLIP text tower turns each phrase into a direction of the "
             "image features; nuisance phrases are removed, relevant ones kept (only them, or weighted)")


def split_phrases(text: str) -> list[str]:
    """Phrases typed in one field, separated by semicolons."""
    return [phrase.strip() for phrase in text.split(";") if phrase.strip()]


class AddSpaceDialog(QtWidgets.QDialog):
    """What to ignore (a metadata column or tag prefix) or relevant-only, the method, the space's name.

    Options that cannot be used are shown disabled with the reason (in their text and tooltip).
    """

    def __init__(self, choices: list[tuple[str, str]], relevant_why: str, words_why: str, taken: list[str],
                 parent=None):
        super().__init__(parent)
        self.setWindowTitle("Add a feature space")
        self.taken = set(taken)
        self.nuisance_radio = QtWidgets.QRadioButton("Ignore a nuisance")
        self.nuisance_radio.setToolTip("Erase what the features hold of an attribute you do not care about "
                                       "(camera, wafer type, sky tint...)")
        self.attribute_combo = QtWidgets.QComboBox()
        for attribute, label in choices:
            self.attribute_combo.addItem(label, attribute)
        self.relevant_radio = QtWidgets.QRadioButton(f"Keep only what separates your {INTERESTING_SCORE}-5 scores"
                                                     " (relevant-only)")
        self.method_combo = QtWidgets.QComboBox()
        for method in ERASERS:
            entry = GUIDANCE_METHODS[method]
            why = entry.missing()
            self.method_combo.addItem(f"{entry.label}: {why}" if why else entry.label, method)
            row = self.method_combo.count() - 1
            self.method_combo.model().item(row).setEnabled(not why)
            self.method_combo.setItemData(row, why or entry.description, Qt.ToolTipRole)
        self.method_combo.setToolTip("How the nuisance is erased: LEACE leaves no linear trace (closed form, "
                                     "instant); the non-linear head also defeats non-linear probes (trained, "
                                     "seconds to a minute)")
        self.words_radio = QtWidgets.QRadioButton(f"Describe in words ({GUIDANCE_METHODS[WORDS_METHOD].label})")
        self.words_radio.setToolTip(WORDS_TIP)
        self.nuisance_words = QtWidgets.QLineEdit()
        self.nuisance_words.setPlaceholderText("background colour; rotation")
        self.nuisance_words.setToolTip("Phrases for what to ignore, separated by ';'")
        self.relevant_words = QtWidgets.QLineEdit()
        self.relevant_words.setPlaceholderText("shape of the object")
        self.relevant_words.setToolTip("Phrases for what matters, separated by ';' (only their directions are kept)")
        self.name_edit = QtWidgets.QLineEdit()
        self.name_edit.setToolTip("The space's name: its rankings are <detector>@<name>")
        self.reason = QtWidgets.QLabel()
        self.reason.setWordWrap(True)
        self.buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.Ok | QtWidgets.QDialogButtonBox.Cancel)
        self.buttons.button(QtWidgets.QDialogButtonBox.Ok).setText("Add")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        form = QtWidgets.QFormLayout()
        form.addRow(self.nuisance_radio)
        form.addRow("Attribute", self.attribute_combo)
        form.addRow("Method", self.method_combo)
        form.addRow(self.relevant_radio)
        form.addRow(self.words_radio)
        form.addRow("Ignore", self.nuisance_words)
        form.addRow("Keep", self.relevant_words)
        form.addRow("Name", self.name_edit)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.reason)
        layout.addWidget(self.buttons)

        self._disable(self.nuisance_radio, "" if choices else
                      "needs a metadata column in the manifest, or tags with a prefix (e.g. pose:left)")
        self._disable(self.relevant_radio, relevant_why)
        self._disable(self.words_radio, words_why)
        (self.nuisance_radio if choices or relevant_why else self.relevant_radio).setChecked(True)
        for radio in (self.nuisance_radio, self.relevant_radio, self.words_radio):
            radio.toggled.connect(self._kind_changed)
        self.attribute_combo.currentIndexChanged.connect(lambda _: self._suggest_name())
        self.name_edit.textEdited.connect(lambda _: self._check())
        for edit in (self.nuisance_words, self.relevant_words):
            edit.textChanged.connect(lambda _: self._check())
        self._kind_changed()

    @staticmethod
    def _disable(radio: QtWidgets.QRadioButton, why: str) -> None:
        if why:
            radio.setEnabled(False)
            radio.setText(f"{radio.text()}: {why}")
            radio.setToolTip(why)

    def kind(self) -> str:
        if self.words_radio.isChecked():
            return "words"
        return "nuisance" if self.nuisance_radio.isChecked() else "relevant"

    def values(self) -> dict:
        """``{"name", "kind", "attribute", "method"}`` of the space to add, and the phrases of a words space."""
        kind = self.kind()
        values = {"name": self.name_edit.text().strip(), "kind": kind,
                  "attribute": self.attribute_combo.currentData() if kind == "nuisance" else None,
                  "method": {"nuisance": self.method_combo.currentData(), "words": WORDS_METHOD}.get(kind, "leace")}
        if kind == "words":
            values.update(nuisance_words=split_phrases(self.nuisance_words.text()),
                          relevant_words=split_phrases(self.relevant_words.text()))
        return values

    def _kind_changed(self) -> None:
        nuisance, words = self.kind() == "nuisance", self.kind() == "words"
        self.attribute_combo.setEnabled(nuisance and self.nuisance_radio.isEnabled())
        self.method_combo.setEnabled(nuisance and self.nuisance_radio.isEnabled())
        for edit in (self.nuisance_words, self.relevant_words):
            edit.setEnabled(words and self.words_radio.isEnabled())
        self._suggest_name()

    def _suggest_name(self) -> None:
        attribute = self.attribute_combo.currentData()
        names = {"relevant": "relevant", "words": "words", "nuisance": f"no-{attribute or ''}"}
        self.name_edit.setText(names[self.kind()])
        self._check()

    def _check(self) -> None:
        """The Add button is enabled only for a usable request; the reason says what is wrong otherwise."""
        name, why = self.name_edit.text().strip(), ""
        chosen = [r for r in (self.nuisance_radio, self.relevant_radio, self.words_radio) if r.isChecked()]
        if not (chosen and chosen[0].isEnabled()):
            why = "Nothing to add yet: see the reasons above."
        elif self.kind() == "words" and not (self.nuisance_words.text().strip() or self.relevant_words.text().strip()):
            why = "Type what to ignore or what to keep, in words."
        elif name in self.taken:
            why = f"A space {name!r} exists: remove it first or choose another name."
        else:
            try:
                check_space_name(name)
            except ValueError as err:
                why = str(err)
        self.reason.setText(why)
        self.buttons.button(QtWidgets.QDialogButtonBox.Ok).setEnabled(not why)
