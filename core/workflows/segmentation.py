"""Per-pixel anomaly maps in a project: fit the patch model once, compute maps lazily or in bulk, correct.

The model (:mod:`oddscope.core.models.patches`) is fitted on the project's
known-normal (reference) images when it has them, else zero-shot on a pool of
its images, and saved in the project.  Maps are computed for the items asked
for (the app asks for what the user looks at; ``oddscope maps compute`` and
``evaluate segmentation`` ask for all), written as float16 rows, each ending in
a flag that marks it current, and fsynced, so a cancelled or killed run keeps
what it finished.  Writing a map needs no database write, so the app computes
the maps the user looks at through a read-only connection while labelling goes
on.  Whatever changes the model (a refit, a correction) deletes the maps file:
every map is recomputed when next needed.
"""

from __future__ import annotations

import hashlib
import re
import time

import numpy as np

from oddscope.core.models.patches import MODES, PatchExtractor, PatchScorer
from oddscope.core.models.patches.scorer import MapSettings
from oddscope.core.progress import as_progress
from oddscope.core.project.features import FeatureStore
from oddscope.core.project.layout import ENCODER, PIXEL_MAP_SCORE, PIXEL_MAPS
from oddscope.core.project.store import Project
from oddscope.core.workflows.extraction import decoded_batches

MAX_REFERENCE_IMAGES = 400  # reference images whose patches feed the bank (a seeded sample beyond that)
_MAP_DTYPE = np.float16


def project_encoder(project: Project, device: str = "auto"):
    """The encoder (and weights) the project was indexed with, in torch: maps need its intermediate stages."""
    from oddscope.core.models.encoders import load_encoder

    info = ENCODER.read(project)
    if not info:
        raise FileNotFoundError(f"{project.root} has no features yet; run `oddscope index` first")
    weights = re.match(r"file (.+) \(sha256 [0-9a-f]+\)$", info.get("weights", ""))
    return load_encoder(info["spec"], weights=weights.group(1) if weights else None, device=device,
                        runtime="torch")


def default_mode(project: Project) -> str:
    """``reference`` when the project has usable known-normal images, else ``zero-shot``."""
    return "reference" if len(project.ids_with_status("ok", "reference")) >= 2 else "zero-shot"


class PixelMaps:
    """The per-pixel maps of one open project: the fitted model, the cached maps, corrections."""

    def __init__(self, project: Project, device: str = "auto"):
        self.project = project
        self.device = device
        self._encoder = self._extractor = self._scorer = None

    # ------------------------------------------------------------------ model
    @property
    def extractor(self) -> PatchExtractor:
        if self._extractor is None:
            self._encoder = project_encoder(self.project, self.device)
            self._extractor = PatchExtractor(self._encoder)
        return self._extractor

    @property
    def scorer(self) -> PatchScorer | None:
        """The fitted model, or None when there is none or it no longer fits the project."""
        if self._scorer is None and self.is_current():
            self._scorer = PatchScorer.load(self.project.layout.patch_model)
        return self._scorer

    def is_current(self) -> bool:
        info = PIXEL_MAPS.read(self.project) or {}
        return (self.project.layout.patch_model.exists() and info.get("encoder_key") == _encoder_key(self.project)
                and info.get("inputs") == _fit_inputs(self.project, info.get("mode")))

    def fit(self, mode: str | None = None, settings: MapSettings | None = None, progress=None) -> PatchScorer:
        """Fit the model (``mode`` None: :func:`default_mode`), save it, and mark every map stale."""
        progress = as_progress(progress)
        mode = mode or default_mode(self.project)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        settings = settings or MapSettings()
        start = time.perf_counter()
        rng = np.random.default_rng(settings.seed)
        if mode == "reference":
            ids = self.project.ids_with_status("ok", "reference")
            if len(ids) < 2:
                raise ValueError("reference mode needs at least 2 readable known-normal images: index them with "
                                 "`oddscope index IMAGES --reference NORMAL_DIR`, or use --mode zero-shot")
            ids = np.sort(rng.choice(ids, min(len(ids), MAX_REFERENCE_IMAGES), replace=False))
        else:
            ids = self.project.ids_with_status("ok", "test")
            ids = np.sort(rng.choice(ids, min(len(ids), settings.pool_size + 1), replace=False))
        found, patches = self._patches(ids, progress, "map model: patches")
        scorer = PatchScorer(mode, self.extractor.encoder.input_size, settings)
        if mode == "reference":
            scorer.fit_reference(patches, progress)
        else:
            scorer.fit_zero_shot(patches, found)
        self.project.layout.models_dir.mkdir(exist_ok=True)
        scorer.save(self.project.layout.patch_model)
        self._scorer = scorer
        self._mark_all_stale()
        PIXEL_MAPS.write(self.project, {
            "mode": mode, "encoder_key": _encoder_key(self.project), "inputs": _fit_inputs(self.project, mode),
            "extractor": self.extractor.describe(), "settings": vars(settings), "n_images": len(found),
            "bank_patches": int(len(scorer.bank)) if scorer.bank is not None else 0,
            "seconds": round(time.perf_counter() - start, 2)})
        return scorer

    # ------------------------------------------------------------------- maps
    def compute(self, ids=None, batch_size: int = 8, num_workers: int | None = 0, store_scores: bool = True,
                progress=None) -> np.ndarray:
        """Maps for ``ids`` (default: every readable test item) that have no current one; returns the ids done.

        Fits the model first when there is none.  Maps are written to the maps
        file only, so a read-only connection can compute them (the app does,
        for the image on screen, without taking the project's writer lock);
        ``store_scores`` also records every current map's image score in the
        project (``score_patchmap``: needs a writable project).  Progress
        reports ``maps``; a cancel keeps every finished batch.
        """
        progress = as_progress(progress)
        scorer = self.scorer or self.fit(progress=progress)
        ids = self.project.ids_with_status("ok", "test") if ids is None else np.asarray(ids, np.int64)
        current = self._current()
        todo = np.array([i for i in ids if i >= len(current) or not current[i]], dtype=np.int64)
        store = self._store()
        store.open(self.project.n_items)
        paths = self.project.resolve_all(self.project.items(with_meta=False).loc[todo, "path"]) if len(todo) else []
        done = 0
        if len(todo):
            progress.update("maps", 0, len(todo))
        for batch_ids, ok, images, _ in (decoded_batches(todo, paths, self.extractor.encoder, batch_size,
                                                         num_workers) if len(todo) else ()):
            good = batch_ids[ok]
            if len(good):
                maps = scorer.maps(self.extractor(images), good).reshape(len(good), -1)
                store.write_rows(good, np.concatenate([maps, np.ones((len(good), 1), np.float32)], axis=1))
                if store_scores:
                    self._store_scores()
            done += len(batch_ids)
            progress.update("maps", done, len(todo))
        if store_scores:
            self._store_scores()
        return todo

    def map(self, item_id: int) -> np.ndarray | None:
        """The current map of ``item_id`` (``(S, S)`` float32, calibrated units), or None."""
        matrix = self._store().read() if self.scorer is not None else None
        if matrix is None or item_id >= len(matrix) or matrix[item_id, -1] != 1:
            return None
        size = self.scorer.settings.map_size
        return np.asarray(matrix[item_id, :-1], np.float32).reshape(size, size)

    def scores(self) -> np.ndarray:
        """Each item's map score (the highest value of its current map) as last stored, NaN where none."""
        scores = self.project.load_array(PIXEL_MAP_SCORE)
        n = self.project.n_items
        out = np.full(n, np.nan, np.float32)
        if scores is not None:
            out[: min(n, len(scores))] = scores[:n]
        return out

    # ------------------------------------------------------------ corrections
    def mark_normal(self, item_id: int, region: np.ndarray) -> int:
        """The user says ``region`` (bool, any resolution, over the whole image) of ``item_id`` is normal.

        Its patches join the model's normal patches, so the same pattern stops
        alarming on every image; every map goes stale.  Returns the number of
        patches added.
        """
        scorer = self.scorer or self.fit()
        path = self.project.resolve(self.project.items(with_meta=False).loc[item_id, "path"])
        _, ok, images, reasons = next(iter(decoded_batches([item_id], [path], self.extractor.encoder, 1, 0)))
        if not ok[0]:
            raise ValueError(f"cannot read item {item_id}: {reasons[0]}")
        patches = self.extractor(images)[0]
        cells = _cells(region, patches.shape[0])
        if not cells.any():
            return 0
        scorer.add_normal(patches[cells])
        scorer.save(self.project.layout.patch_model)
        self._mark_all_stale()
        return int(cells.sum())

    def undo_normal(self) -> int:
        """Undo the newest :meth:`mark_normal`: its patches leave the model and every map goes stale.

        Returns the number of patches removed (0: no correction to undo).
        """
        scorer = self.scorer
        removed = scorer.remove_last_correction() if scorer is not None else 0
        if removed:
            scorer.save(self.project.layout.patch_model)
            self._mark_all_stale()
        return removed

    # -------------------------------------------------------------- helpers
    def _store(self) -> FeatureStore:
        """The maps file: a row per item, its map's cells then a flag that is 1 once the map is written."""
        size = self.scorer.settings.map_size if self.scorer is not None else MapSettings().map_size
        return FeatureStore(self.project.layout.pixel_maps, size * size + 1, _MAP_DTYPE)

    def _current(self) -> np.ndarray:
        """Whether each item (row) has a current map."""
        matrix = self._store().read() if self.scorer is not None else None
        return np.zeros(0, bool) if matrix is None else np.asarray(matrix[:, -1] == 1)

    def _store_scores(self) -> None:
        """Record the image score of every current map (maps the app computed read-only included)."""
        matrix = self._store().read()
        scores = np.full(self.project.n_items, np.nan, np.float32)
        current = np.flatnonzero(np.asarray(matrix[:, -1] == 1))
        current = current[current < len(scores)]
        scores[current] = PatchScorer.image_scores(np.asarray(matrix[current, :-1], np.float32))
        self.project.save_array(PIXEL_MAP_SCORE, scores)

    def _mark_all_stale(self) -> None:
        self.project.layout.pixel_maps.unlink(missing_ok=True)
        self.project.save_array(PIXEL_MAP_SCORE, np.full(self.project.n_items, np.nan, np.float32))

    def _patches(self, ids, progress, stage: str) -> tuple[np.ndarray, np.ndarray]:
        paths = self.project.resolve_all(self.project.items(with_meta=False).loc[ids, "path"])
        found, chunks = [], []
        progress.update(stage, 0, len(ids))
        for batch_ids, ok, images, _ in decoded_batches(ids, paths, self.extractor.encoder, 8, 0):
            if ok.any():
                found.append(batch_ids[ok])
                chunks.append(self.extractor(images))
            progress.update(stage, sum(map(len, found)), len(ids))
        if not chunks:
            raise ValueError("none of the images for the map model could be read")
        return np.concatenate(found), np.concatenate(chunks)


def _cells(region: np.ndarray, grid: int) -> np.ndarray:
    """A bool region at any resolution -> the ``grid x grid`` patch cells it covers (any pixel counts)."""
    from PIL import Image

    region = np.asarray(region, bool)
    small = Image.fromarray(region.astype(np.uint8) * 255).resize((grid, grid), Image.Resampling.BOX)
    return np.asarray(small) > 0


def _encoder_key(project: Project) -> str | None:
    return (ENCODER.read(project) or {}).get("key")


def _fit_inputs(project: Project, mode: str | None) -> str:
    """What a fitted model depends on besides the encoder: the reference images (zero-shot: nothing)."""
    if mode != "reference":
        return "collection"
    ids = project.ids_with_status("ok", "reference")
    return hashlib.sha1(np.asarray(ids, np.int64).tobytes()).hexdigest()
