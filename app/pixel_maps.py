"""Where is it anomalous: the anomaly-map layer over the viewer, its controls, and the user's painted corrections.

The map of the image on screen is fetched on a worker (the ``pixel_maps`` lane,
latest wins) through :class:`~oddscope.app.jobs.PixelMapJobs`; the first one
fits the map model, a status-bar task with progress and Cancel.  Maps, the
maps are computed through a read-only connection (labelling goes on), while
the fit and corrections write the model, so the window lends them its writer
lock (labelling pauses meanwhile, as for an import).

Corrections are painted with a brush in the viewer: *normal* adds the region's
patches to the model's normal patches (the same false alarm disappears from
every image that shares it; every other map is recomputed when next viewed),
*defect* merges the region into the item's defect mask PNG, the mask label
that ``evaluate segmentation`` reads as ground truth.  Undo paint puts the
previous mask back, or takes the newest normal region out of the model.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets
from PySide6.QtCore import Qt, Signal

from oddscope.app import jobs
from oddscope.app.heat_layer import (
    KEY_TIP,
    PAINT_COLOURS,
    HeatLayer,
    MaskOutline,
    PaintLayer,
    colour_key,
    threshold_words,
    value_words,
)
from oddscope.app.model import ProjectModel
from oddscope.app.session import ProjectSession
from oddscope.app.viewer import ImageViewer
from oddscope.app.worker import Task
from oddscope.core.project.layout import PIXEL_MAP_SCORE
from oddscope.core.workflows.map_export import DEFAULT_THRESHOLD, SCALE_MAX

LAYER = "Anomaly map"
PAINT_LAYER = "Painted region"
MASK_LAYER = "Defect mask"
DEFAULT_OPACITY = 0.45  # the image (and the defect itself) still shows through the colour
MODEL_TASKS = ("pixel_fit", "pixel_correct")  # status-bar tasks that change the map model
BRUSH_SHARE = 0.04  # the brush radius, as a share of the image's longer side


class MapStrip(QtWidgets.QWidget):
    """The controls under the viewer's: show, opacity, threshold (in words), colour key; paint, apply, undo."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.show_box = QtWidgets.QCheckBox("Anomaly map")
        self.show_box.setToolTip("Show where this image is anomalous (M)")
        self.opacity = QtWidgets.QSlider(Qt.Horizontal, minimum=0, maximum=100, value=round(DEFAULT_OPACITY * 100))
        self.opacity.setToolTip("Opacity of the anomaly map")
        self.threshold = QtWidgets.QSlider(Qt.Horizontal, minimum=0, maximum=round(SCALE_MAX * 10),
                                           value=round(DEFAULT_THRESHOLD * 10))
        self.threshold.setToolTip("Regions at or above this value are coloured and outlined. The unit is calibrated "
                                  "on normal pixels: v means about 1 normal pixel in 10^v is as anomalous")
        self.threshold_text = QtWidgets.QLabel()
        self.threshold_text.setMinimumWidth(QtGui.QFontMetrics(self.font()).horizontalAdvance(
            threshold_words(5.9)))
        key = QtWidgets.QLabel()
        key.setPixmap(colour_key())
        key.setToolTip(KEY_TIP)
        self.status = QtWidgets.QLabel()
        self.status.setObjectName("mapStatus")
        self.paint_normal = QtWidgets.QToolButton(text="Paint normal", checkable=True)
        self.paint_normal.setToolTip("Paint a region that is normal: its look stops alarming on every image "
                                     "(Enter applies, Esc leaves)")
        self.paint_defect = QtWidgets.QToolButton(text="Paint defect", checkable=True)
        self.paint_defect.setToolTip("Paint a defect: saved as this image's mask label, the ground truth of "
                                     "`oddscope evaluate segmentation` (Enter applies, Esc leaves)")
        self.brush = QtWidgets.QSlider(Qt.Horizontal, minimum=1, maximum=15, value=round(BRUSH_SHARE * 100))
        self.brush.setToolTip("Brush size")
        self.apply_button = QtWidgets.QPushButton("Apply")
        self.apply_button.setToolTip("Apply the painted region (Enter)")
        self.undo_button = QtWidgets.QPushButton("Undo paint")
        self.undo_button.setToolTip("Undo the last applied paint: a defect mask goes back to what it was, "
                                    "a normal region leaves the model")

        for slider, width in ((self.opacity, 60), (self.threshold, 120), (self.brush, 50)):
            slider.setMinimumWidth(width)
        self.status.setSizePolicy(QtWidgets.QSizePolicy.Ignored, QtWidgets.QSizePolicy.Preferred)  # long: elided
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        rows = ((self.show_box, key, QtWidgets.QLabel("Opacity"), self.opacity, self.status),
                (QtWidgets.QLabel("Threshold"), self.threshold, self.threshold_text),
                (self.paint_normal, self.paint_defect, QtWidgets.QLabel("Brush"), self.brush, self.apply_button,
                 self.undo_button))
        for widgets in rows:
            row = QtWidgets.QHBoxLayout()
            row.setContentsMargins(0, 0, 0, 0)
            for widget in widgets:
                row.addWidget(widget, 1 if widget in (self.status, self.threshold) else 0)
            if widgets[-1] is self.undo_button:
                row.addStretch(1)
            layout.addLayout(row)

    def threshold_value(self) -> float:
        return self.threshold.value() / 10.0


class PixelMapsController(QtCore.QObject):
    """The anomaly map of the viewer's image, its controls and corrections (see the module docstring)."""

    message = Signal(str, int)  # status-bar text, milliseconds shown

    def __init__(self, model: ProjectModel, session: ProjectSession, viewer: ImageViewer,
                 host: QtWidgets.QWidget):
        super().__init__(host)
        self.model, self.session, self.viewer = model, session, viewer
        self.lane = session.tasks.lane("pixel_maps")
        self.strip = MapStrip()
        self.layer = HeatLayer(self.strip.threshold_value(), DEFAULT_OPACITY)
        self.paint = PaintLayer()
        self.mask_outline = MaskOutline()
        self.mask_item: int | None = None  # the item whose saved defect mask is outlined
        viewer.add_control_strip(self.strip)
        viewer.add_layer(LAYER, self.layer, visible=False)
        viewer.add_layer(MASK_LAYER, self.mask_outline, visible=True)
        viewer.add_layer(PAINT_LAYER, self.paint, visible=False)
        self._jobs: jobs.PixelMapJobs | None = None
        self.map_item: int | None = None  # the item whose map the layer shows
        self.paint_mode: str | None = None  # "normal", "defect" or None
        self._paint_item: int | None = None  # the item being painted
        self._lent = 0  # jobs running with the writer lock the window lent them
        self._generation = 0  # counts projects: jobs of an earlier one give nothing back
        self._fit_tried = False  # the model is fitted for the user at most once per project
        # the paints Undo paint takes back, oldest first: ("defect", item, mask file, previous bytes) or
        # ("normal", item, image name)
        self.undo_steps: list[tuple] = []

        self.toggle_action = QtGui.QAction(LAYER, self, checkable=True, shortcut=QtGui.QKeySequence("M"))
        self.toggle_action.setToolTip("Show where the current image is anomalous (M)")
        self.toggle_action.toggled.connect(self.set_visible)
        self.leave_paint_action = QtGui.QAction("Leave paint mode", self, shortcut=QtGui.QKeySequence("Esc"),
                                                enabled=False)
        self.leave_paint_action.triggered.connect(lambda: self.set_paint_mode(None))
        self.apply_action = QtGui.QAction("Apply painted region", self, shortcut=QtGui.QKeySequence("Return"),
                                          enabled=False)
        self.apply_action.triggered.connect(self.apply_paint)
        for action in (self.toggle_action, self.leave_paint_action, self.apply_action):
            action.setShortcutContext(Qt.WindowShortcut)
            host.addAction(action)

        s = self.strip
        s.show_box.toggled.connect(self.toggle_action.setChecked)
        viewer.layer_action(LAYER).toggled.connect(self.toggle_action.setChecked)
        s.opacity.valueChanged.connect(lambda v: self.layer.set_opacity(v / 100.0))
        s.threshold.valueChanged.connect(self._threshold_moved)
        s.paint_normal.toggled.connect(lambda on: self._paint_button("normal", on))
        s.paint_defect.toggled.connect(lambda on: self._paint_button("defect", on))
        s.brush.valueChanged.connect(lambda _: self._set_brush())
        s.apply_button.clicked.connect(self.apply_paint)
        s.undo_button.clicked.connect(self.undo_paint)
        viewer.image_shown.connect(self._image_shown)
        self._threshold_moved(s.threshold.value())
        self._update_controls()

    # ================================================================ the layer
    @property
    def visible(self) -> bool:
        return self.toggle_action.isChecked()

    def set_visible(self, on: bool) -> None:
        """Show or hide the map (M); showing it fetches the current image's map."""
        for widget in (self.toggle_action, self.strip.show_box, self.viewer.layer_action(LAYER)):
            if widget.isChecked() != on:
                widget.setChecked(on)
        self.viewer.set_layer_visible(LAYER, on)
        if on:
            self._fit_tried = False  # turning the map on may fit the model (again, after a Cancel)
            self.request()
        self._update_controls()

    def _threshold_moved(self, value: int) -> None:
        threshold = value / 10.0
        self.strip.threshold_text.setText(threshold_words(threshold))
        self.layer.set_threshold(threshold)

    def project_loaded(self) -> None:
        """Another project: its own jobs (encoder, model) and no map or undo yet."""
        self._jobs = jobs.PixelMapJobs(self.model.project.root) if self.model.project is not None else None
        self._generation += 1
        self._lent = 0
        self._fit_tried = False
        self.undo_steps.clear()
        self.set_paint_mode(None)
        self._show_map(None, None)
        if self._has_maps():  # a project whose maps were computed (e.g. the inspection demo) opens with them shown
            self.set_visible(True)
        elif self.visible:
            self.request()

    def _has_maps(self) -> bool:
        table = self.model.table
        return table is not None and PIXEL_MAP_SCORE in table and bool(table[PIXEL_MAP_SCORE].notna().any())

    def project_closing(self) -> None:
        """The project closes: its jobs stop and nothing of it stays on screen."""
        self.lane.cancel_all()
        self._jobs = None
        self._generation += 1
        self._lent = 0
        self.undo_steps.clear()
        self.set_paint_mode(None)
        self._show_map(None, None)
        self._show_mask(None, None)
        self._say("")

    def _image_shown(self, item_id: int) -> None:
        if item_id != self.mask_item:
            self._show_mask(None, None)
            self.refresh_mask()
        if self.paint_mode is not None and item_id != self._paint_item:
            self.set_paint_mode(None)
        if self.visible and item_id != self.map_item:
            self._show_map(None, None)
            self.request()

    def request(self) -> None:
        """Fetch the map of the image on screen, off the GUI thread (computed and cached when missing)."""
        item_id = self.viewer.item_id
        if self._jobs is None or item_id is None or self.viewer.image() is None:
            return
        if self._model_task_running():
            return  # asked again when it ends
        self._say("Computing the anomaly map…")
        task = Task("map", "Anomaly map", self._jobs.map_of, item_id)
        task.finished.connect(lambda values, i=item_id: self._fetched(i, values))
        task.failed.connect(lambda message, _details: self._say(f"No anomaly map: {message}"))
        self.lane.submit(task)

    def _fetched(self, item_id: int, values) -> None:
        if item_id != self.viewer.item_id or not self.visible:
            return
        if values is not None:
            self._show_map(item_id, values)
        elif not self._can_write():
            self._say("No anomaly map model yet, and this window cannot fit one: "
                      + ("the project is read-only" if self.model.read_only else "a background task writes it"))
        elif not self._fit_tried:
            self._fit()
        else:
            self._say("No anomaly map model (its fit was cancelled or failed): press M twice to fit it again")

    def _fit(self) -> None:
        """Fit the map model (first map of the project): a status-bar task, then fetch the map again."""
        self._fit_tried = True
        self._say("Fitting the anomaly map model…")
        give_back = self._lend()
        task = self.session.run_task("pixel_fit", "Fitting the anomaly map model", self._jobs.fit, None,
                                     on_done=lambda _outcome: self._model_task_ended(give_back))
        if task is None:
            give_back()

    def refresh_mask(self) -> None:
        """Outline the saved defect mask of the image on screen (read on a worker)."""
        item_id = self.viewer.item_id
        if self.model.project is None or item_id is None:
            return
        task = Task("defect", "Reading the defect mask", jobs.read_defect,
                    self.model.project.layout.defect_mask(item_id))
        task.finished.connect(lambda grid: self._show_mask(item_id, grid))
        self.session.tasks.lane("defects").submit(task)

    def _show_mask(self, item_id: int | None, grid) -> None:
        if item_id is not None and item_id != self.viewer.item_id:
            return  # read for an image no longer on screen
        self.mask_item = item_id
        rgb = self.viewer.image()
        if grid is None or rgb is None:
            self.mask_outline.set_mask(None)
        else:
            self.mask_outline.set_mask(grid, rgb.shape[1], rgb.shape[0])

    def _model_task_running(self) -> bool:
        """A fit or correction runs: it has the map jobs (and the writer lock) to itself."""
        return any(self.session.tasks.running(kind) for kind in MODEL_TASKS)

    def _model_task_ended(self, give_back) -> None:
        give_back()
        if self.visible and self.viewer.item_id is not None and self.viewer.item_id != self.map_item:
            self.request()

    def _show_map(self, item_id: int | None, values) -> None:
        self.map_item = item_id
        if values is None:
            self.layer.set_map(None)
            return
        rgb = self.viewer.image()
        self.layer.set_map(values, rgb.shape[1], rgb.shape[0])
        peak = float(np.max(values))
        self._say(f"Peak {peak:.1f}")
        self.strip.status.setToolTip(f"The highest value of this image's map: {value_words(peak)}")

    # ============================================================ corrections
    def _paint_button(self, mode: str, on: bool) -> None:
        if on:
            self.set_paint_mode(mode)
        elif self.paint_mode == mode:
            self.set_paint_mode(None)

    def set_paint_mode(self, mode: str | None) -> None:
        """Paint a ``normal`` or ``defect`` region with the mouse (None: leave paint mode, forgetting the region)."""
        image = self.viewer.image()
        if mode is not None and (image is None or self.viewer.item_id is None):
            mode = None
        if mode is not None and not self._can_write():
            self.message.emit("Painting is off: " + ("the project is read-only" if self.model.read_only
                                                     else "wait for the background task to finish"), 5000)
            mode = None
        if mode is not None and self.paint_mode is None:
            self._paint_item = self.viewer.item_id
            self.paint.start(image.shape[1], image.shape[0], PAINT_COLOURS[mode])
            self._set_brush()
        elif mode is not None:
            self.paint.set_colour(PAINT_COLOURS[mode])
        self.paint_mode = mode
        self.viewer.set_layer_visible(PAINT_LAYER, mode is not None)
        for button, name in ((self.strip.paint_normal, "normal"), (self.strip.paint_defect, "defect")):
            button.blockSignals(True)
            button.setChecked(mode == name)
            button.blockSignals(False)
        if mode is not None:
            self.message.emit(f"Paint the {mode} region with the mouse; Enter applies, Esc leaves", 0)
        self._update_controls()

    def _set_brush(self) -> None:
        image = self.viewer.image()
        if image is not None:
            self.paint.radius = self.strip.brush.value() / 100.0 * max(image.shape[:2])

    def paint_stroke(self, points) -> None:
        """Paint discs at image pixels ``points`` ((x, y) pairs), as a mouse drag does."""
        for x, y in points:
            self.paint.paint_at(x, y)

    def apply_paint(self) -> None:
        """Apply the painted region as a normal correction or a defect mask; paint mode ends."""
        mode, item_id, region = self.paint_mode, self.viewer.item_id, self.paint.mask.copy()
        if mode is None or item_id is None:
            return
        if mode == "normal" and (self.lane.tasks() or self._model_task_running()):
            self.message.emit("The anomaly map is being computed: apply again in a moment", 4000)
            return
        self.set_paint_mode(None)
        if not region.any():
            self.message.emit("Nothing painted", 3000)
            return
        name = Path(self.viewer.path).name
        if mode == "defect":
            rgb = self.viewer.image()
            path = self.model.project.layout.defect_mask(item_id)
            task = Task("defect", "Saving the defect region",
                             jobs.paint_defect, path, region, (rgb.shape[1], rgb.shape[0]))
            task.finished.connect(lambda previous: self._defect_saved(item_id, path, previous, name))
            task.failed.connect(lambda message, _d: self.message.emit(f"Cannot save the defect: {message}", 8000))
            self.session.tasks.lane("defects").submit(task)
            return
        give_back = self._lend()
        self._say("Learning that this region is normal…")
        task = self.session.run_task("pixel_correct", "Learning a normal region",
                                     functools.partial(self._jobs.mark_normal, item_id, region),
                                     lambda result: self._corrected(item_id, name, *result),
                                     on_done=lambda _outcome: self._model_task_ended(give_back))
        if task is None:
            give_back()

    def _corrected(self, item_id: int, name: str, added: int, values) -> None:
        self.undo_steps.append(("normal", item_id, name))
        self._update_controls()
        self._model_changed(item_id, values, f"Learned {added} normal patch(es) from {name}")

    def _model_changed(self, item_id: int, values, what: str) -> None:
        """A correction or its undo: show the item's new map if it is on screen; say the others follow."""
        if item_id == self.viewer.item_id and self.visible and values is not None:
            self._show_map(item_id, values)
        self.message.emit(f"{what}; the other images' maps are recomputed as you view them", 10000)

    def _defect_saved(self, item_id: int, path: Path, previous, name: str) -> None:
        self.undo_steps.append(("defect", item_id, path, previous))
        self._update_controls()
        self.refresh_mask()
        self.message.emit(f"Saved the defect region of {name} ({path.name}); Undo paint puts it back", 6000)

    def undo_paint(self) -> None:
        """Undo the last applied paint: restore the defect mask it replaced, or take the normal region out."""
        if not self.undo_steps:
            self.message.emit("No paint to undo", 3000)
            return
        if self.undo_steps[-1][0] == "normal" and not self._can_write():
            self.message.emit("Undo waits: a background task writes the project", 4000)
            return
        if self.undo_steps[-1][0] == "normal" and (self.lane.tasks() or self._model_task_running()):
            self.message.emit("The anomaly map is being computed: undo again in a moment", 4000)
            return
        step = self.undo_steps.pop()
        self._update_controls()
        if step[0] == "defect":
            _, item_id, path, previous = step
            task = Task("defect", "Undoing the defect paint", jobs.restore_defect, path, previous)
            task.finished.connect(lambda _: (self.refresh_mask(), self.message.emit(
                f"Undid the defect paint of item #{item_id}", 4000)))
            task.failed.connect(lambda message, _d: self.message.emit(f"Cannot undo: {message}", 8000))
            self.session.tasks.lane("defects").submit(task)
            return
        _, item_id, name = step
        shown = self.viewer.item_id if self.viewer.item_id is not None else item_id
        give_back = self._lend()
        task = self.session.run_task("pixel_correct", "Undoing a normal correction",
                                     functools.partial(self._jobs.undo_normal, shown),
                                     lambda result: self._model_changed(
                                         shown, result[1], f"Undid the normal region of {name}"),
                                     on_done=lambda _outcome: self._model_task_ended(give_back))
        if task is None:
            give_back()

    # =============================================================== plumbing
    def _can_write(self) -> bool:
        """Whether map work may write the project: the window holds the writer lock, or lent it to us."""
        return self.model.can_label or self._lent > 0

    def _lend(self):
        """Lend the window's writer lock to one more job; returns what gives it back when the job ends."""
        if self._lent == 0 and self.model.can_label:
            self.model.suspend_writing()
        self._lent += 1
        generation = self._generation

        def give_back() -> None:
            if generation != self._generation:
                return  # a job of a project closed meanwhile: the lock it borrowed went with that project
            self._lent -= 1
            if self._lent == 0 and self.model.is_open:
                self.model.resume_writing()

        return give_back

    def _say(self, text: str) -> None:
        """What the map is doing or showing, next to its controls (in full in the tooltip)."""
        self.strip.status.setText(text)
        self.strip.status.setToolTip(text)

    def _update_controls(self) -> None:
        painting = self.paint_mode is not None
        self.strip.opacity.setEnabled(self.visible)
        self.strip.threshold.setEnabled(self.visible)
        self.strip.apply_button.setEnabled(painting)
        self.strip.undo_button.setEnabled(bool(self.undo_steps))
        self.leave_paint_action.setEnabled(painting)
        self.apply_action.setEnabled(painting)
