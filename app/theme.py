"""The app's look: Fusion, a dark palette and ``resources/style.qss``, plus the captioned panel frame it styles."""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtGui, QtWidgets

STYLE = Path(__file__).resolve().parent.parent / "resources" / "style.qss"


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


def panel(title: str, widget: QtWidgets.QWidget, tip: str = "") -> QtWidgets.QFrame:
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
