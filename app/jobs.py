"""The window's background jobs: Qt-free top-level functions run in child processes or worker threads.

Child processes receive them pickled by name, so they stay importable
module-level functions with plain arguments; each opens a connection of its
own (a sqlite3 connection must not be used by two threads at once, and the
window's connection holds the writer lock only while nothing else writes).
:class:`PixelMapJobs` keeps what its thread jobs share (the encoder, the fitted
map model) between them, and likewise opens a connection per job.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from oddscope.app.search_process import SearchProcess
from oddscope.core.progress import Progress
from oddscope.core.project.layout import TEST_IDS
from oddscope.core.project.store import Project
from oddscope.core.workflows.active_session import ActiveSession
from oddscope.core.workflows.retrieval import Neighbours, build_neighbour_index  # noqa: F401 - a child's job
from oddscope.core.workflows.segmentation import PixelMaps


def index_options(values: dict):
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
        summary = index_images(project, images, options=index_options(values), progress=progress)
    return {"n_items": summary.n_items, "skipped": list(summary.skipped), "seconds": dict(summary.seconds)}


def update_project(root, images, values: dict, reindex: bool, progress=None) -> None:
    """Child process: index (new images or a new encoder) or re-analyse the project at ``root``."""
    from oddscope.core.workflows.pipeline import analyse, index_images

    with Project.open(root, writable=True) as project:
        if reindex:
            index_images(project, images, options=index_options(values), progress=progress)
        else:
            analyse(project, index_options(values), progress=progress)


def import_labels_into(root, path, progress=None):
    """Import a labels CSV through a writer connection of this thread's own."""
    from oddscope.core.project.labels_io import import_labels

    with Project.open(root, writable=True) as project:
        return import_labels(project, path)


def export_table_to(root, path, progress=None):
    """Write the project's table to ``path`` (CSV or Parquet) from a read-only connection of its own."""
    from oddscope.core.project.table import export_table

    with Project.open(root) as project:
        return export_table(project, path)


def prepare_session(root, method: str, progress=None) -> ActiveSession:
    """Read the features and prepare ``method`` (seconds at 10^5 items: PCA, kNN graph).

    The window runs it as a task (progress bar, Cancel) and hands the result to
    :meth:`~oddscope.app.learning.ActiveLearner.set_session`.
    """
    with Project.open(root) as project:
        return ActiveSession(project, method, progress=progress)


def add_guided_space(root, name: str, attribute: str | None, kind: str, progress=None, **how) -> dict:
    """Child process: fit the feature space ``name`` (:func:`~oddscope.core.workflows.guidance.add_space`; ``how``:
    its ``method``, a words space's phrases) and score every detector in it; returns its spec.  A cancelled or
    failed one leaves nothing behind."""
    from oddscope.core.workflows.guidance import add_space

    with Project.open(root, writable=True) as project:
        return add_space(project, name, attribute, kind=kind, progress=progress, **how)


def remove_guided_space(root, name: str, progress=None) -> None:
    """Remove the feature space ``name`` with its scores, rankings and indexes (final: adding it again refits)."""
    from oddscope.core.workflows.guidance import remove_space

    with Project.open(root, writable=True) as project:
        remove_space(project, name)


def map_guided_space(root, name: str, progress=None) -> float:
    """Child process: the UMAP map of the feature space ``name`` (``umap@<name>``); returns its seconds."""
    from oddscope.core.workflows.guidance import compute_space_map

    with Project.open(root, writable=True) as project:
        return compute_space_map(project, name, progress=progress)


@dataclass(frozen=True)
class IndexNeeded:
    """A lookup's answer instead of neighbours: the index of ``metric`` is not saved and the project is too
    large to build it in the window's process (its GIL would stall the window); the window builds it in a
    child process (:func:`build_neighbour_index`) and asks again."""

    metric: str


class NeighbourQuery:
    """``(item_id, k, metric) -> DataFrame`` for the neighbours panel's thread, in the feature space ``space``
    (None: the raw features).

    Below ``build_elsewhere_from`` analysed items (None: always) the searches run in this process, through a
    read-only connection of their own (a sqlite3 connection must not be used by two threads at once, and the
    GUI thread uses the model's), and a missing index is built on the first lookup (``progress.cancel()`` stops
    it).  From it on nothing heavy happens in this process: a
    :class:`~oddscope.app.search_process.SearchProcess` loads the index and answers, and a lookup whose
    index is not saved answers :class:`IndexNeeded` (the window builds it in a child process).
    :meth:`close` ends that process.
    """

    def __init__(self, root, progress: Progress, space: str | None = None, build_elsewhere_from: int | None = None):
        self.root, self.progress, self.space, self.build_elsewhere_from = root, progress, space, build_elsewhere_from
        self._ask = None  # (method, *args) -> what Neighbours.method answers, here or in the search process
        self._process: SearchProcess | None = None

    def __call__(self, item_id: int, k: int, metric: str):
        if self._ask is None:
            self._ask = self._start()
        if self._process is not None and not self._ask("has_index", metric):
            return IndexNeeded(metric)
        return self._ask("of_item", item_id, k, metric)

    def _start(self):
        """Where the searches run: this process, or (from ``build_elsewhere_from`` items on) a child."""
        if self.build_elsewhere_from is not None:
            with Project.open(self.root) as project:
                ids = project.load_array(TEST_IDS, mmap=True)
            if ids is not None and len(ids) >= self.build_elsewhere_from:
                self._process = SearchProcess(self.root, self.space)
                return self._process.ask
        neighbours = Neighbours(Project.open(self.root), self.progress, space=self.space)
        return lambda method, *args: getattr(neighbours, method)(*args)

    def close(self) -> None:
        if self._process is not None:
            self._process.close()


class PixelMapJobs:
    """The per-pixel map work of the window's project at ``root``, run on worker threads.

    One :class:`~oddscope.core.workflows.segmentation.PixelMaps` is kept across
    jobs, so the encoder is loaded and the fitted model read once; each job
    points it at a connection of its own.  Maps are computed through a
    read-only connection (they are written to the maps file, not the database),
    so labelling goes on meanwhile; a fit or a correction writes the model and
    needs the writer lock the window lends it.  Jobs of one instance never
    overlap: they run in the one-thread ``pixel_maps`` lane or as a status-bar
    task while that lane is idle.
    """

    def __init__(self, root):
        self.root = root
        self._maps: PixelMaps | None = None

    def _open(self, writable: bool) -> tuple[Project, PixelMaps]:
        project = Project.open(self.root, writable=writable)
        if self._maps is None:
            self._maps = PixelMaps(project)
        self._maps.project = project
        return project, self._maps

    def fit(self, progress=None) -> None:
        """Fit the map model (reference or zero-shot mode: the project decides); seconds to minutes."""
        with self._open(writable=True)[0]:
            self._maps.fit(progress=progress)

    def map_of(self, item_id: int, progress=None) -> np.ndarray | None:
        """The item's map (computed now and cached when missing), or None when there is no model yet."""
        project, maps = self._open(writable=False)
        with project:
            if not maps.is_current():
                return None
            maps.compute([item_id], store_scores=False, progress=progress)
            return maps.map(item_id)

    def mark_normal(self, item_id: int, region: np.ndarray, progress=None) -> tuple[int, np.ndarray | None]:
        """``region`` (bool, image size) of the item is normal: correct the model, recompute this item's map.

        Returns the number of patches added and the new map.
        """
        project, maps = self._open(writable=True)
        with project:
            added = maps.mark_normal(item_id, region)
            return added, self._recomputed(item_id, progress)

    def undo_normal(self, item_id: int, progress=None) -> tuple[int, np.ndarray | None]:
        """Undo the newest normal correction and recompute this item's map; returns the patches removed and it."""
        project, maps = self._open(writable=True)
        with project:
            removed = maps.undo_normal()
            return removed, self._recomputed(item_id, progress)

    def _recomputed(self, item_id: int, progress) -> np.ndarray | None:
        """The item's map after the model changed (every map went stale): the one on screen comes first."""
        self._maps.compute([item_id], progress=progress)
        return self._maps.map(item_id)


def paint_defect(mask_path, region: np.ndarray, size: tuple[int, int], progress=None) -> bytes | None:
    """Add ``region`` (bool, any resolution over the whole image) to the defect mask PNG at ``mask_path``.

    The mask is a binary PNG of the image's ``size`` (width, height), merged
    with the one there.  Returns the previous file's bytes (None: there was
    none), which :func:`restore_defect` puts back (undo).
    """
    from pathlib import Path

    from PIL import Image

    path = Path(mask_path)
    previous = path.read_bytes() if path.exists() else None
    painted = np.asarray(Image.fromarray(np.asarray(region, np.uint8) * 255).resize(size, Image.Resampling.NEAREST))
    if previous is not None:
        with Image.open(path) as old:
            painted = np.maximum(painted, np.asarray(old.convert("L").resize(size, Image.Resampling.NEAREST)))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part.png")
    Image.fromarray(np.where(painted > 0, 255, 0).astype(np.uint8)).save(tmp)
    tmp.replace(path)
    return previous


def restore_defect(mask_path, previous: bytes | None, progress=None) -> None:
    """Put back the defect mask :func:`paint_defect` replaced (None: there was none)."""
    from pathlib import Path

    path = Path(mask_path)
    if previous is None:
        path.unlink(missing_ok=True)
    else:
        tmp = path.with_suffix(".part.png")
        tmp.write_bytes(previous)
        tmp.replace(path)



def read_defect(mask_path, side: int = 256, progress=None) -> np.ndarray | None:
    """The defect mask at ``mask_path`` as a float grid (longer side ``side``, box-averaged), None when absent."""
    from pathlib import Path

    from PIL import Image

    path = Path(mask_path)
    if not path.exists():
        return None
    with Image.open(path) as image:
        scale = min(1.0, side / max(image.size))
        small = image.convert("L").resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                                          Image.Resampling.BOX)
    return np.asarray(small, np.float32) / 255.0
