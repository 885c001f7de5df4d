"""Row blocks as Ray tasks: one model applied to a feature matrix in parallel, and the seeded fit sample.

Scoring with a fitted detector, placing items on a fitted map and querying a kNN index are all "a model,
a matrix, a function of both, row by row".  :func:`map_blocks` puts the model and the matrix in Ray's object
store once (tasks on a node read them without copying), runs one task per block of rows and puts the
answers back in row order, reporting blocks done and stopping the remaining tasks on Cancel.

Models fitted on a sample (the detectors other than kNN, UMAP) take the rows of :func:`sample_rows`: seeded,
so a re-run fits on the same rows, and ``None`` when every row fits, so a collection no larger than the sample
gets exactly the single-machine result.
"""

from __future__ import annotations

import numpy as np

from oddscope.core.progress import as_progress, with_note
from oddscope.core.workflows.cluster.session import require_ray

FIT_SAMPLE = 50_000  # rows a sample-fitted model learns from: a forest or a UMAP of 50k is seconds to a minute
BLOCKS_PER_CPU = 2  # a slow node delays little; each task reads the model from the object store once


def sample_rows(n: int, size: int, seed: int = 0) -> np.ndarray | None:
    """The sorted rows a model is fitted on: a seeded sample of ``size`` of ``n`` rows; ``None`` for all."""
    if size < 1:
        raise ValueError(f"the fit sample needs at least 1 row, got {size}")
    if n <= size:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def map_blocks(function, model, X: np.ndarray, *args, num_cpus: int = 1, blocks: int | None = None,
               progress=None, stage: str = "blocks") -> list:
    """``[function(model, X, start, stop, *args) for each block]`` as Ray tasks, in row order.

    ``blocks`` defaults to :data:`BLOCKS_PER_CPU` per CPU of the cluster (at most one per row); each task
    holds ``num_cpus`` CPUs.  Progress reports ``stage`` with the blocks done as a note; a cancel stops the
    tasks still running.
    """
    ray = require_ray()
    progress = as_progress(progress)
    if blocks is None:
        blocks = BLOCKS_PER_CPU * int(ray.cluster_resources().get("CPU", 1)) // num_cpus
    bounds = np.linspace(0, len(X), max(1, min(len(X), blocks)) + 1).astype(int)
    model_ref, x_ref = ray.put(model), ray.put(X)
    task = ray.remote(num_cpus=num_cpus)(function)
    refs = [task.remote(model_ref, x_ref, int(a), int(b), *args) for a, b in zip(bounds[:-1], bounds[1:])]
    order = {ref: i for i, ref in enumerate(refs)}
    parts, waiting = [None] * len(refs), list(refs)
    progress.update(with_note(stage, f"0/{len(refs)} blocks"), 0, len(X))
    try:
        while waiting:
            done, waiting = ray.wait(waiting, num_returns=1)
            parts[order[done[0]]] = ray.get(done[0])
            finished = sum(p is not None for p in parts)
            rows = int(sum(bounds[i + 1] - bounds[i] for i, p in enumerate(parts) if p is not None))
            progress.update(with_note(stage, f"{finished}/{len(refs)} blocks"), rows, len(X))
    finally:
        for ref in waiting:  # cancelled (or failed): the other tasks' work is not wanted any more
            ray.cancel(ref)
    return parts
