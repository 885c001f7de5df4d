"""Feature matrices on disk: one memory-mapped ``.npy`` per encoder and weights.

Row ``i`` of the key's file (``project.layout.features(key)``) holds the features of item ``i``.  The key
names the encoder *and* its weights, so features of different models never
mix.  Rows are written with plain file writes and fsynced before the project
marks them done (:mod:`oddscope.core.workflows.extraction`), so a killed run
never leaves a row marked done that is not on disk.

Reading features (neighbours, active learning, the app) needs no torch: its
import holds the GIL for a good half second.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np

from oddscope.core.project.store import Project

_LOAD_BYTES = 8 << 20  # feature rows read per block by load_features


def encoder_key(encoder, steps=None) -> str:
    """A file-name-safe key for an encoder, the exact weights it loaded and the science ``steps`` before it
    (a :class:`~oddscope.core.data.science.ScienceSteps`; none leave the key as it always was)."""
    desc = encoder.describe()
    named = f"{desc['weights']}|{desc['input_size']}|{desc['dim']}" + (f"|{steps}" if steps else "")
    digest = hashlib.sha1(named.encode()).hexdigest()[:8]
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


def load_features(project: Project, key: str, ids=None) -> np.ndarray:
    """Features (float32, in memory) of ``ids`` (default: every item that has them)."""
    matrix = FeatureStore(project.layout.features(key), 0).read()
    if matrix is None:
        raise FileNotFoundError(f"no features for {key} in {project.root}; run `oddscope index` first")
    ids = project.features_done(key) if ids is None else np.asarray(ids)
    out = np.empty((len(ids), matrix.shape[1]), np.float32)
    step = max(1, _LOAD_BYTES // max(1, matrix.shape[1] * matrix.itemsize))
    for start in range(0, len(ids), step):  # in blocks: a single copy would hold the GIL for the whole read
        out[start : start + step] = matrix[ids[start : start + step]]
    return out
