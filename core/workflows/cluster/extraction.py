"""Feature extraction as a Ray Data pipeline, into the same feature matrix as a single-machine run.

The pending items (those without features, as :func:`oddscope.core.workflows.extraction.extract_features`
finds them) are split into shards (:mod:`.shards`).  Ray Data then reads and decodes each shard in a task
anywhere on the cluster (the encoder's picklable ``Preprocess``, which carries the project's science steps,
as the single path's decoding workers do), and an actor pool encodes them: each actor
loads the encoder once (a GPU per actor when the cluster has GPUs; else a few torch threads per actor,
leaving cores to decode) and writes the shard's features to a file in the project.  This process copies
each finished shard into the memory-mapped matrix and marks its items done (or skipped, with the
reason), exactly as the single path does per batch, so every later step reads the project as usual.

A run that is killed resumes: items marked done are not pending any more, and the shard files finished
but not yet copied are copied instead of computed again.  Storage must be shared: workers read the
images at their paths and write the shard files under the project folder.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass

import numpy as np

from oddscope.core.data.images import DEFAULT_MAX_PIXELS
from oddscope.core.data.science import NO_STEPS, ScienceSteps
from oddscope.core.models.encoders.openvino_runtime import THREADS_ENV
from oddscope.core.progress import as_progress, with_note
from oddscope.core.project.store import Project
from oddscope.core.workflows.cluster.session import cpu_nodes, quiet_ray_data, require_ray
from oddscope.core.workflows.cluster.shards import Shard, plan_shards, read_shard, write_shard
from oddscope.core.workflows.extraction import ExtractionReport, decode_image, pending_items, save_batch

SHARD_SIZE = 256  # item ids per shard: one decode task, one shard file
CPU_THREADS_PER_ACTOR = 4  # torch scales poorly past a few threads: more actors use a big node better


@dataclass
class ClusterExtractionReport(ExtractionReport):
    """An extraction report that also counts shards: those this run finished, and those it recovered
    (finished by an earlier, killed run: their ``recovered`` items were read from file, not computed)."""

    shards: int = 0
    shards_recovered: int = 0
    recovered: int = 0
    # Start-up apart from throughput: seconds until this run's first computed shard was copied in (Ray Data's
    # start, the actors' encoder load, one shard's decode and encode), and the items of that shard.
    startup_seconds: float = 0.0
    startup_items: int = 0

    @property
    def steady_images_per_second(self) -> float:
        """Images per second after the start-up (0 when a single shard was computed)."""
        after = self.seconds - self.startup_seconds
        return (self.computed - self.startup_items) / after if after > 0 and self.startup_seconds else 0.0


@dataclass(frozen=True)
class ActorPlan:
    """How many encoder actors, with what each holds: a GPU, or ``threads`` torch threads on the CPU."""

    count: int
    num_gpus: int
    threads: int | None


def plan_actors(ray) -> ActorPlan:
    """One actor per GPU; without GPUs, actors of up to :data:`CPU_THREADS_PER_ACTOR` threads, a core per
    actor left for decoding (on a 2-core node: one actor of 2 threads, as the single path runs)."""
    gpus = int(ray.cluster_resources().get("GPU", 0))
    if gpus:
        return ActorPlan(gpus, 1, None)
    nodes, cores = cpu_nodes(ray)
    threads = min(cores, CPU_THREADS_PER_ACTOR)
    return ActorPlan(max(1, cores // (threads + 1)) * nodes, 0, threads)


def actor_options(plan: ActorPlan) -> dict:
    """Ray options of an encoder actor: its GPU, or its CPU threads in its environment, as ``OMP_NUM_THREADS``
    for torch (Ray sets it to the actor's one CPU otherwise) and :data:`THREADS_ENV` for OpenVINO (which
    otherwise takes every core of the node, whatever the actors beside it take).  Through the environment, not
    ``torch.set_num_threads``, so an actor whose encoder runs on OpenVINO never imports torch (5 s of a fresh
    actor's start under load)."""
    if plan.threads is None:
        return {"num_gpus": plan.num_gpus}
    threads = str(plan.threads)
    return {"num_gpus": plan.num_gpus, "runtime_env": {"env_vars": {"OMP_NUM_THREADS": threads, THREADS_ENV: threads}}}


def decode_shard(row: dict, preprocess, max_pixels: int) -> dict:
    """A Ray Data task: the images of one shard, decoded and resized (readable ones only, in order), and
    each item's reason for being unreadable (JSON, ``null`` where it was read)."""
    images, reasons = [], []
    for path in row["paths"]:
        image, reason = decode_image(str(path), preprocess, max_pixels)
        reasons.append(reason)
        if image is not None:
            images.append(image)
    size = preprocess.size
    stacked = np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8)
    return {"name": row["name"], "file": row["file"], "ids": np.asarray(row["ids"], np.int64),
            "images": stacked, "reasons": json.dumps(reasons)}


class ShardEncoder:
    """A Ray Data actor: loads the encoder once, then encodes decoded shards and writes their files."""

    def __init__(self, load_encoder, batch_size: int, dtype: str):
        self.encoder = load_encoder()  # torch's threads come from the actor's environment (:func:`actor_options`)
        self.batch_size, self.dtype = batch_size, np.dtype(dtype)

    def __call__(self, batch: dict) -> dict:
        for i in range(len(batch["name"])):
            images = np.array(batch["images"][i])  # writable: torch warns on Ray's read-only views
            chunks = [self.encoder.encode(images[s : s + self.batch_size])
                      for s in range(0, len(images), self.batch_size)]
            features = np.concatenate(chunks) if chunks else np.zeros((0, self.encoder.dim))
            write_shard(str(batch["file"][i]), np.asarray(batch["ids"][i]), features.astype(self.dtype),
                        json.loads(str(batch["reasons"][i])))
        return {"name": batch["name"]}


def extract_features_on_cluster(project: Project, encoder, load_encoder, batch_size: int = 32, dtype=np.float32,
                                max_pixels: int = DEFAULT_MAX_PIXELS, shard_size: int = SHARD_SIZE,
                                steps: ScienceSteps = NO_STEPS, progress=None) -> ClusterExtractionReport:
    """Compute features for every item of ``project`` that has none yet for ``encoder`` after the science
    ``steps``, on the Ray cluster this process is connected to (:func:`.session.ray_cluster`).

    ``encoder`` is loaded here for its key and preprocessing; ``load_encoder`` (picklable, no arguments)
    loads the same encoder in each actor.  Progress reports items with the shards done as a note; a
    cancel stops after the shard being copied, and the same call resumes.
    """
    ray = require_ray()
    quiet_ray_data()
    progress = as_progress(progress)
    todo, plain, store = pending_items(project, encoder, dtype, steps)
    report = ClusterExtractionReport(plain.encoder_key, reused=plain.reused)
    folder = project.layout.feature_shards(report.encoder_key)
    if not len(todo):
        shutil.rmtree(folder, ignore_errors=True)
        return report
    folder.mkdir(parents=True, exist_ok=True)
    shards = plan_shards(todo.index, project.resolve_all(todo["path"]), folder, shard_size)
    report.shards = len(shards)
    shards_done = items_done = 0
    start = time.perf_counter()

    def copy_in(shard: Shard, recovered: bool) -> None:
        nonlocal shards_done, items_done
        ids, features, reasons = read_shard(shard.file)
        save_batch(project, store, report, ids, features, reasons)
        os.remove(shard.file)
        if recovered:  # encoded by an earlier run: counted apart from this run's work
            report.computed -= len(features)
            report.recovered += len(features)
            report.shards_recovered += 1
        shards_done, items_done = shards_done + 1, items_done + len(ids)
        report.seconds = time.perf_counter() - start
        if not recovered and not report.startup_seconds:
            report.startup_seconds, report.startup_items = report.seconds, len(features)
        progress.update(with_note("features", f"{shards_done}/{len(shards)} shards"), items_done, len(todo))

    progress.update(with_note("features", f"0/{len(shards)} shards"), 0, len(todo))
    ready = [s for s in shards if os.path.exists(s.file)]
    missing = {s.name: s for s in shards if not os.path.exists(s.file)}
    for shard in ready:
        copy_in(shard, recovered=True)
    if missing:
        names = _encoded_shards(ray, list(missing.values()), encoder.preprocessor(steps), max_pixels, load_encoder,
                                batch_size, dtype)
        try:
            for name in names:
                copy_in(missing[name], recovered=False)
        finally:
            names.close()  # a cancel stops the pipeline (a local Ray then shuts down with the session)
    shutil.rmtree(folder, ignore_errors=True)  # only files of shards no longer pending are left
    return report


def _encoded_shards(ray, shards: list, preprocess, max_pixels: int, load_encoder, batch_size: int, dtype):
    """The Ray Data pipeline over ``shards``: yields each shard's name once its file is written."""
    plan = plan_actors(ray)
    rows = [{"name": s.name, "file": s.file, "ids": s.ids, "paths": list(s.paths)} for s in shards]
    # A decode task holds its shard's resized images twice (list, then stack) and one image at full size.
    # Reserving that memory also keeps Ray Data from fusing decoding into the actors (fused, each actor
    # would decode and encode in turn instead of encoding while tasks decode).
    decode_memory = 2 * max(s.ids.size for s in shards) * 3 * preprocess.size**2 + (64 << 20)
    dataset = (ray.data.from_items(rows, override_num_blocks=len(rows))
               .map(decode_shard, fn_kwargs={"preprocess": preprocess, "max_pixels": max_pixels},
                    num_cpus=1, memory=decode_memory)
               .map_batches(ShardEncoder, batch_size=1, num_cpus=1, **actor_options(plan),
                            compute=ray.data.ActorPoolStrategy(size=plan.count),
                            fn_constructor_kwargs={"load_encoder": load_encoder, "batch_size": batch_size,
                                                   "dtype": np.dtype(dtype).str}))
    rows = iter(dataset.iter_rows())
    try:
        for row in rows:
            yield str(row["name"])
    finally:
        rows.close()  # stops the pipeline's executor at once, not whenever the iterator is collected
