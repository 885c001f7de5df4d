"""Feature extraction: images -> encoder -> the project's feature matrix.

Work goes in batches; after each batch the rows are written and fsynced and
only then marked done in the project database.  A run that is cancelled or
killed therefore resumes with the first unfinished batch, and a second run on
the same folder computes only the new images.

Decoding, the science steps the project records (:mod:`oddscope.core.data.science`) and resizing run
in worker processes (a multiprocessing pool a few
batches ahead); the main process only runs the network.  Nothing here imports
torch: with the OpenVINO runtime, indexing runs without it.
"""

from __future__ import annotations

import collections
import itertools
import multiprocessing
import os
import time
from dataclasses import dataclass, field

import numpy as np

from oddscope.core.data.images import DEFAULT_MAX_PIXELS, ImageReadError, _reason
from oddscope.core.data.science import NO_STEPS, ScienceSteps
from oddscope.core.models.encoders.common import Preprocess
from oddscope.core.progress import as_progress
from oddscope.core.project.features import FeatureStore, encoder_key
from oddscope.core.project.layout import ENCODER, PREPROCESS
from oddscope.core.project.store import Project


class _DecodeDataset:
    """Decodes and resizes one image; a failure becomes a reason, never an exception."""

    def __init__(self, ids, paths, preprocess: Preprocess, max_pixels: int):
        self.ids, self.paths = list(ids), list(paths)
        self.preprocess, self.max_pixels = preprocess, max_pixels

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i):
        return (self.ids[i], *decode_image(self.paths[i], self.preprocess, self.max_pixels))


def decode_image(path, preprocess: Preprocess, max_pixels: int) -> tuple[np.ndarray | None, str | None]:
    """``(image, None)``: the file at ``path`` decoded, through the science steps and resized by
    ``preprocess``, or ``(None, reason)``: why it cannot be read.  Never raises, so one bad file never ends a run."""
    try:
        return preprocess.load(path, max_pixels), None
    except ImageReadError as err:
        return None, str(err)
    except Exception as err:  # noqa: BLE001 - a decoder bug on one file must not end the run
        return None, _reason(err)


def _collate(batch):
    size = next((img.shape for _, img, _ in batch if img is not None), None)
    ids = np.array([b[0] for b in batch], dtype=np.int64)
    ok = np.array([b[1] is not None for b in batch])
    images = np.stack([b[1] for b in batch if b[1] is not None]) if size else None
    reasons = [b[2] for b in batch]
    return ids, ok, images, reasons


_worker_dataset: _DecodeDataset | None = None  # the dataset of this worker process


def _worker_init(dataset: _DecodeDataset) -> None:
    global _worker_dataset
    _worker_dataset = dataset


def _decode_batch(rows: range):
    return _collate([_worker_dataset[i] for i in rows])


# Batches decoded ahead of the network, per worker: enough to hide a slow file, few enough
# that a fast decoder cannot fill the memory (a batch of 32 at 224 px is 4.8 MB).
_PREFETCH = 4


def decoded_batches(ids, paths, encoder, batch_size: int = 32, num_workers: int | None = None,
                    max_pixels: int = DEFAULT_MAX_PIXELS, steps: ScienceSteps = NO_STEPS):
    """Batches ``(ids, ok, images, reasons)`` of the images at ``paths``, decoded, through the science
    ``steps`` and resized for ``encoder`` in worker processes; ``images`` holds the readable ones (``ok``),
    ``reasons`` says why not."""
    dataset = _DecodeDataset(ids, paths, encoder.preprocessor(steps), max_pixels)
    batches = [range(i, min(i + batch_size, len(dataset))) for i in range(0, len(dataset), batch_size)]
    workers = default_workers() if num_workers is None else num_workers
    if not workers:
        for rows in batches:
            yield _collate([dataset[i] for i in rows])
        return
    with multiprocessing.Pool(workers, initializer=_worker_init, initargs=(dataset,)) as pool:
        todo = iter(batches)
        pending = collections.deque(pool.apply_async(_decode_batch, (rows,))
                                    for rows in itertools.islice(todo, workers * _PREFETCH))
        while pending:
            batch = pending.popleft().get()
            for rows in itertools.islice(todo, 1):
                pending.append(pool.apply_async(_decode_batch, (rows,)))
            yield batch


def default_workers() -> int:
    """Decoding processes: one per spare core, at least one so decoding overlaps the forward pass."""
    return max(1, min(4, (os.cpu_count() or 2) - 1))


@dataclass
class ExtractionReport:
    encoder_key: str
    computed: int = 0
    reused: int = 0
    skipped: list = field(default_factory=list)  # (item_id, reason)
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        return self.computed / self.seconds if self.seconds else 0.0


def recorded_steps(project: Project) -> ScienceSteps:
    """The science steps the project's features were computed with (none before any were recorded)."""
    return ScienceSteps.parse((ENCODER.read(project) or {}).get(PREPROCESS))


def pending_items(project: Project, encoder, dtype=np.float32, steps: ScienceSteps = NO_STEPS):
    """``(todo, report, store)``: the items still without ``encoder``'s features after ``steps`` (a frame
    indexed by item id), a report counting the others as reused, and the feature store opened with room
    for every row."""
    key = encoder_key(encoder, steps)
    items = project.items(with_meta=False)
    done = set(project.features_done(key).tolist())
    todo = items[~items["status"].isin(["skipped", "missing"]) & ~items.index.isin(list(done))]
    store = FeatureStore(project.layout.features(key), encoder.dim, dtype)
    store.open(max(project.n_items, 1))  # room for every item's row
    return todo, ExtractionReport(key, reused=len(done)), store


def save_batch(project: Project, store: FeatureStore, report: ExtractionReport, ids, features, reasons) -> None:
    """Write the features of a finished batch and only then mark it done: ``ids`` every item of the batch,
    ``features`` the rows of the readable ones (in order), ``reasons[i]`` why item ``i`` was not readable
    (None where it was)."""
    ids = np.asarray(ids, dtype=np.int64)
    good = ids[np.array([r is None for r in reasons], dtype=bool)]
    if len(good):
        store.write_rows(good, features)
    skipped = [(int(i), "skipped", r) for i, r in zip(ids, reasons) if r is not None]
    project.mark_features_done(report.encoder_key, good, skipped)
    report.computed += len(good)
    report.skipped += [(i, r) for i, _, r in skipped]


def extract_features(project: Project, encoder, batch_size: int = 32, num_workers: int | None = None,
                     dtype=np.float32, max_pixels: int = DEFAULT_MAX_PIXELS, steps: ScienceSteps = NO_STEPS,
                     progress=None) -> ExtractionReport:
    """Compute features for every item of ``project`` that has none yet for ``encoder`` after ``steps``."""
    progress = as_progress(progress)
    todo, report, store = pending_items(project, encoder, dtype, steps)
    if not len(todo):
        return report
    loader = decoded_batches(todo.index, project.resolve_all(todo["path"]), encoder, batch_size, num_workers,
                             max_pixels, steps)
    start = time.perf_counter()
    progress.update("features", 0, len(todo))
    finished = 0
    for ids, ok, images, reasons in loader:
        save_batch(project, store, report, ids, encoder.encode(images) if ok.any() else None, reasons)
        finished += len(ids)
        report.seconds = time.perf_counter() - start
        progress.update("features", finished, len(todo))
    return report
