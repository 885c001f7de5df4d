"""The shards of a cluster extraction: which items each holds, and the file a worker writes for it.

A shard is the pending items whose ids fall in one range of ``shard_size`` ids, named by that range and a
hash of its ids, so the same pending items give the same names in every run: a run that was killed finds
the files of the shards it finished and computes only the others.  A shard file is written to a temporary
name and renamed, so a file under its final name is complete.  Unreadable items travel in the file with
their reason, to be recorded exactly as a single-machine run records them.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Shard:
    """Pending items ``ids`` (sorted) with their resolved ``paths``, written to ``file`` once encoded."""

    name: str
    ids: np.ndarray
    paths: list
    file: str


def plan_shards(ids, paths, folder: Path, shard_size: int) -> list[Shard]:
    """Split the pending items (``ids`` with their ``paths``) into shards of one id range each."""
    ids = np.asarray(ids, dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    ids, paths = ids[order], [paths[i] for i in order]
    ranges = ids // shard_size
    breaks = np.flatnonzero(np.diff(ranges)) + 1
    shards = []
    for start, stop in zip(np.r_[0, breaks], np.r_[breaks, len(ids)]):
        part = ids[start:stop]
        digest = hashlib.sha1(part.tobytes()).hexdigest()[:12]
        name = f"{int(ranges[start]):09d}-{digest}"
        shards.append(Shard(name, part, paths[start:stop], str(folder / f"{name}.npz")))
    return shards


def write_shard(file: str, ids: np.ndarray, features: np.ndarray, reasons: list) -> None:
    """Save a finished shard: every item's id, the readable ones' features (in order) and each item's
    reason for being unreadable (``None`` where it was read)."""
    tmp = f"{file}.{os.getpid()}.tmp"
    with open(tmp, "wb") as fh:
        np.savez(fh, ids=ids, features=features, reasons=np.array([r or "" for r in reasons], dtype=str))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, file)


def read_shard(file: str) -> tuple[np.ndarray, np.ndarray, list]:
    """``(ids, features, reasons)`` as :func:`write_shard` was given them."""
    with np.load(file) as data:
        reasons = [str(r) or None for r in data["reasons"]]
        return data["ids"], data["features"], reasons
