"""Feature extraction: images -> encoder -> a memory-mapped matrix on disk.

Row ``i`` of ``features/<key>.npy`` holds the features of item ``i``.  The key
names the encoder *and* its weights, so features of different models never
mix.  Work goes in batches; after each batch the rows are written and fsynced
and only then marked done in the project database.  A run that is cancelled or
killed therefore resumes with the first unfinished batch, and a second run on
the same folder computes only the new images.

Decoding and resizing run in DataLoader worker processes; the main process
only normalises and runs the (traced, batch-norm-folded) network.  torch is
imported only to extract: reading features (neighbours, active learning, the
app) must not pay its import, which holds the GIL for a good half second.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .images import DEFAULT_MAX_PIXELS, ImageReadError, _reason, load_rgb8
from .progress import as_progress
from .store import Project


_LOAD_BYTES = 8 << 20  # feature rows read per block by load_features


def encoder_key(encoder) -> str:
    """A file-name-safe key for an encoder and the exact weights it loaded."""
    desc = encoder.describe()
    digest = hashlib.sha1(f"{desc['weights']}|{desc['input_size']}|{desc['dim']}".encode()).hexdigest()[:8]
    slug = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in desc["spec"]).strip("-")
    return f"{slug}-{digest}"


class FeatureStore:
    """The on-disk feature matrix of one encoder, growing as items are added."""

    def __init__(self, path: Path, dim: int, dtype=np.float32):
        self.path = Path(path)
        self.dim = dim
        self.dtype = np.dtype(dtype)

    def open(self, n_rows: int) -> np.memmap:
        """Open for writing with room for ``n_rows`` rows (grows the file if needed, keeping rows).

        Growing copies the old rows file to file, so it never holds the matrix in memory.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            current = np.load(self.path, mmap_mode="r+")
            if current.shape[1] != self.dim or current.dtype != self.dtype:
                raise ValueError(f"{self.path} holds {current.shape[1]}-d {current.dtype} features, "
                                 f"expected {self.dim}-d {self.dtype}")
            if current.shape[0] >= n_rows:
                return current
            old_offset = current.offset
            del current
            grown = self.path.with_suffix(".grow.npy")
            new_offset = np.lib.format.open_memmap(grown, mode="w+", dtype=self.dtype,
                                                   shape=(n_rows, self.dim)).offset
            with open(self.path, "rb") as src, open(grown, "r+b") as dst:
                src.seek(old_offset)
                dst.seek(new_offset)
                shutil.copyfileobj(src, dst, 1 << 24)
                dst.flush()
                os.fsync(dst.fileno())
            os.replace(grown, self.path)
            return np.load(self.path, mmap_mode="r+")
        return np.lib.format.open_memmap(self.path, mode="w+", dtype=self.dtype, shape=(n_rows, self.dim))

    def write_rows(self, ids, rows: np.ndarray) -> None:
        """Write ``rows`` at row numbers ``ids`` (the file has room: :meth:`open`) and fsync them.

        Plain file writes, not a writable memory map: the rows reach the disk
        without staying resident in this process, so indexing a million images
        does not grow its memory by the size of the matrix.
        """
        ids = np.asarray(ids, dtype=np.int64)
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        row_bytes = self.dim * self.dtype.itemsize
        breaks = np.flatnonzero(np.diff(ids) != 1) + 1  # contiguous runs of ids: one write each
        with open(self.path, "r+b") as fh:
            offset = _data_offset(fh)
            for start, stop in zip(np.r_[0, breaks], np.r_[breaks, len(ids)]):
                fh.seek(offset + int(ids[start]) * row_bytes)
                fh.write(rows[start:stop].tobytes())
            fh.flush()
            os.fsync(fh.fileno())

    def read(self) -> np.ndarray | None:
        return np.load(self.path, mmap_mode="r") if self.path.exists() else None


def _data_offset(fh) -> int:
    """Where the rows start in an open ``.npy`` file: just after its header."""
    major, _ = np.lib.format.read_magic(fh)
    (np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0)(fh)
    return fh.tell()


class _DecodeDataset:
    """Decodes and resizes one image; a failure becomes a reason, never an exception.

    A map-style dataset for torch's DataLoader (any ``__getitem__``/``__len__`` will do).
    """

    def __init__(self, ids, paths, preprocess, size: int, max_pixels: int):
        self.ids, self.paths = list(ids), list(paths)
        self.preprocess, self.size, self.max_pixels = preprocess, size, max_pixels

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i):
        try:
            image = self.preprocess(load_rgb8(self.paths[i], self.max_pixels, target_side=2 * self.size))
            return self.ids[i], image, None
        except ImageReadError as err:
            return self.ids[i], None, str(err)
        except Exception as err:  # noqa: BLE001 - a decoder bug on one file must not end the run
            return self.ids[i], None, _reason(err)


def _collate(batch):
    size = next((img.shape for _, img, _ in batch if img is not None), None)
    ids = np.array([b[0] for b in batch], dtype=np.int64)
    ok = np.array([b[1] is not None for b in batch])
    images = np.stack([b[1] for b in batch if b[1] is not None]) if size else None
    reasons = [b[2] for b in batch]
    return ids, ok, images, reasons


def _worker_init(_):
    import torch

    torch.set_num_threads(1)  # workers only decode; the network gets the cores


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


def extract_features(project: Project, encoder, batch_size: int = 32, num_workers: int | None = None,
                     dtype=np.float32, max_pixels: int = DEFAULT_MAX_PIXELS, progress=None) -> ExtractionReport:
    """Compute features for every item of ``project`` that has none yet for ``encoder``."""
    from torch.utils.data import DataLoader

    progress = as_progress(progress)
    key = encoder_key(encoder)
    items = project.items(with_meta=False)
    done = set(project.features_done(key).tolist())
    todo = items[~items["status"].isin(["skipped", "missing"]) & ~items.index.isin(list(done))]
    report = ExtractionReport(key, reused=len(done))
    store = FeatureStore(project.root / "features" / f"{key}.npy", encoder.dim, dtype)
    store.open(max(project.n_items, 1))  # room for every item's row
    if not len(todo):
        return report
    paths = project.resolve_all(todo["path"])
    dataset = _DecodeDataset(todo.index, paths, encoder.preprocessor(), encoder.input_size, max_pixels)
    workers = default_workers() if num_workers is None else num_workers
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=_collate,
                        worker_init_fn=_worker_init if workers else None, prefetch_factor=4 if workers else None)
    start = time.perf_counter()
    progress.update("features", 0, len(todo))
    finished = 0
    for ids, ok, images, reasons in loader:
        good = ids[ok]
        if len(good):
            store.write_rows(good, encoder.encode(images))
        skipped = [(int(i), "skipped", r) for i, r in zip(ids, reasons) if r is not None]
        project.mark_features_done(key, good, skipped)
        report.computed += len(good)
        report.skipped += [(i, r) for i, _, r in skipped]
        finished += len(ids)
        report.seconds = time.perf_counter() - start
        progress.update("features", finished, len(todo))
    return report


def load_features(project: Project, key: str, ids=None) -> np.ndarray:
    """Features (float32, in memory) of ``ids`` (default: every item that has them)."""
    matrix = FeatureStore(project.root / "features" / f"{key}.npy", 0).read()
    if matrix is None:
        raise FileNotFoundError(f"no features for {key} in {project.root}; run `oddscope index` first")
    ids = project.features_done(key) if ids is None else np.asarray(ids)
    out = np.empty((len(ids), matrix.shape[1]), np.float32)
    step = max(1, _LOAD_BYTES // max(1, matrix.shape[1] * matrix.itemsize))
    for start in range(0, len(ids), step):  # in blocks: a single copy would hold the GIL for the whole read
        out[start : start + step] = matrix[ids[start : start + step]]
    return out
