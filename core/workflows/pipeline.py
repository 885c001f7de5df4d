"""The indexing pipeline: folder -> features -> scores, map, clusters, in a project.

Each stage is a plain function taking an open :class:`Project`, so the CLI, the
app's background worker and scripts run the same code.  Re-running is cheap:
features are cached per encoder, weights and science steps (``IndexOptions.preprocess``:
recorded in the project, kept by a re-index that does not name them) and only new images are encoded; the analysis
stages (scores, map, clusters) are recomputed over everything, since a new
image changes everyone's neighbours, but only when something changed: a re-index
that found nothing new, removed or changed, with the same options, keeps them.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from oddscope.core.data.ingest import ScanResult, read_manifest, scan_folder
from oddscope.core.data.remote import is_url
from oddscope.core.data.science import ScienceSteps
from oddscope.core.models.clustering import cluster_all
from oddscope.core.models.projection import MapProjection
from oddscope.core.models.registry import DEFAULT_DETECTORS, DEFAULT_ENCODER
from oddscope.core.progress import as_progress
from oddscope.core.project.csv_paths import remember_image_root
from oddscope.core.project.features import encoder_key, load_features
from oddscope.core.project.layout import (
    ANALYSIS,
    DB_NAME,
    ENCODER,
    MAP_ARRAY,
    PREPROCESS,
    RANKING,
    TEST_IDS,
    split_space,
)
from oddscope.core.project.store import Project
from oddscope.core.workflows.cluster.blocks import FIT_SAMPLE
from oddscope.core.workflows.extraction import ExtractionReport, extract_features, recorded_steps
from oddscope.core.workflows.guidance import refresh_spaces
from oddscope.core.workflows.readiness import MIN_IMAGES
from oddscope.core.workflows.retrieval import drop_indexes
from oddscope.core.workflows.scoring import scatter, score_detectors
from oddscope.core.workflows.spaces import spaces

PLAIN_KNN = ("knn", "knn-l2", "knn-l1")  # the detectors that `-k` sets


class NotEnoughImages(ValueError):
    """Too few readable images to analyse.  :func:`index_images` attaches its ``summary`` (what it found,
    the skipped files with their reasons, already written to ``skipped.csv``) so front ends can show why."""

    summary: "IndexSummary | None" = None


@dataclass
class IndexOptions:
    encoder: str = DEFAULT_ENCODER
    weights: str | None = None
    device: str = "auto"
    runtime: str = "auto"
    preprocess: str | None = None  # science steps before the encoder (data.science); None: keep the recorded
    detectors: tuple = DEFAULT_DETECTORS
    k: int = 5
    batch_size: int = 32
    workers: int | None = None
    dtype: str = "float32"
    max_pixels: int | None = None
    make_map: bool = True
    make_clusters: bool = True
    cluster: str | None = None  # a Ray cluster to run on: local, auto or ray://HOST:PORT (None: this process)
    fit_sample: int = FIT_SAMPLE  # with a cluster: rows the detectors other than kNN, and the map, are fitted on
    knn_pca: int | None = None  # the kNN detectors index the features reduced by PCA to this many dimensions


@dataclass
class IndexSummary:
    n_items: int
    n_new: int
    skipped: list = field(default_factory=list)  # (path, reason)
    extraction: ExtractionReport | None = None
    encoder: dict | None = None
    mode: str = "unsupervised"
    seconds: dict = field(default_factory=dict)
    analysis_kept: bool = False  # nothing changed since the last analysis: scores, map and clusters kept


def collect(source) -> ScanResult:
    """A folder (recursive; project folders inside it are not entered) or a CSV manifest."""
    if str(source).lower().endswith(".csv"):
        return read_manifest(source)
    return scan_folder(source, skip_folders_with=(DB_NAME,))


def _source_folder(source) -> Path | str:
    """The folder of the images ``source`` names: itself, or a manifest's folder (a URL stays a URL)."""
    if is_url(source):
        return source.rsplit("/", 1)[0] if source.lower().endswith(".csv") else source
    return Path(source).parent if Path(source).is_file() else source


def add_source(project: Project, source, role: str = "test") -> tuple[int, list]:
    """Register the images of ``source``; files unusable at a glance are stored as skipped.

    The folder of test images (a manifest's folder) becomes the project's image folder, against which
    the paths of labels and truth files are looked up too.
    """
    scan = collect(source)
    if role == "test":
        remember_image_root(project, _source_folder(source))
    n_new = project.add_items(scan.paths, role=role, metas=scan.metas)
    if scan.skipped:
        project.add_items([p for p, _ in scan.skipped], role=role)
        project.set_status((project.item_id(p), "skipped", r) for p, r in scan.skipped)
    return n_new, scan.skipped


def index_images(project: Project, images=None, reference=None, options: IndexOptions | None = None,
                 progress=None) -> IndexSummary:
    """Everything ``oddscope index`` does, on a writable project (on a Ray cluster: ``options.cluster``)."""
    options = options or IndexOptions()
    if options.cluster:
        from oddscope.core.workflows.cluster.session import ray_cluster

        with ray_cluster(options.cluster):
            return _index_images(project, images, reference, options, progress)
    return _index_images(project, images, reference, options, progress)


def _index_images(project: Project, images, reference, options: IndexOptions, progress) -> IndexSummary:
    from oddscope.core.models.encoders import load_encoder

    progress = as_progress(progress)
    summary = IndexSummary(n_items=0, n_new=0)
    t0 = time.perf_counter()
    if images is not None:
        n_new, _ = add_source(project, images, "test")
        summary.n_new += n_new
    if reference is not None:
        n_new, _ = add_source(project, reference, "reference")
        summary.n_new += n_new
    project.check_files()  # files that disappeared become 'missing', returned ones usable again
    summary.seconds["scan"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    # A stage of its own: the first run exports the encoder to OpenVINO (10-25 s), which must not look like a hang.
    progress.update("loading the encoder", 0, 0)
    steps = recorded_steps(project) if options.preprocess is None else ScienceSteps.parse(options.preprocess)
    encoder = load_encoder(options.encoder, weights=options.weights, device=options.device, runtime=options.runtime)
    summary.encoder = {**encoder.describe(), PREPROCESS: str(steps)}
    extra = {"max_pixels": options.max_pixels} if options.max_pixels else {}
    if options.cluster:
        from oddscope.core.workflows.cluster.extraction import extract_features_on_cluster

        load = partial(load_encoder, options.encoder, weights=options.weights, device=options.device)
        summary.extraction = extract_features_on_cluster(project, encoder, load, batch_size=options.batch_size,
                                                         dtype=np.dtype(options.dtype), steps=steps,
                                                         progress=progress, **extra)
    else:
        summary.extraction = extract_features(project, encoder, batch_size=options.batch_size,
                                              num_workers=options.workers, dtype=np.dtype(options.dtype),
                                              steps=steps, progress=progress, **extra)
    ENCODER.write(project, {**summary.encoder, "key": encoder_key(encoder, steps)})
    summary.seconds["features"] = time.perf_counter() - t0
    summary.n_items = project.n_items
    summary.skipped = [tuple(r) for r in write_skipped_report(project).itertuples(index=False)]

    last = ANALYSIS.read(project) or {}
    if not summary.extraction.computed and last.get("inputs") == _analysis_inputs(project, options)[0]:
        summary.mode, summary.analysis_kept = last["mode"], True
        return summary
    try:
        summary.mode = analyse(project, options, progress=progress, timings=summary.seconds)
    except NotEnoughImages as err:
        err.summary = summary
        raise
    return summary


def _analysis_inputs(project: Project, options: IndexOptions) -> tuple[str, np.ndarray, np.ndarray]:
    """``(fingerprint, test ids, reference ids)``: the analysed items and every option the analysis depends on.

    The features of an item change only with its status (a changed file goes back to pending) or the
    encoder (part of the key), so equal fingerprints and no newly computed features mean an equal result.
    """
    key = ENCODER.read(project)["key"]
    done = set(project.features_done(key).tolist())
    test_ids = np.array([i for i in project.ids_with_status("ok", "test") if i in done], dtype=np.int64)
    ref_ids = np.array([i for i in project.ids_with_status("ok", "reference") if i in done], dtype=np.int64)
    params = [key, list(options.detectors), options.k, options.make_map, options.make_clusters]
    if options.knn_pca:
        params.append({"knn_pca": options.knn_pca})
    if options.cluster:  # a fit sample changes the results of a collection larger than it
        params.append({"fit_sample": options.fit_sample})
    params = json.dumps(params)
    digest = hashlib.sha1(params.encode())
    for ids in (test_ids, ref_ids):
        digest.update(len(ids).to_bytes(8, "little"))
        digest.update(ids.tobytes())
    return digest.hexdigest(), test_ids, ref_ids


def analyse(project: Project, options: IndexOptions | None = None, progress=None, timings=None) -> str:
    """Scores of every detector, the map and the clusters, from the cached features."""
    options = options or IndexOptions()
    progress = as_progress(progress)
    timings = {} if timings is None else timings
    key = ENCODER.read(project)["key"]
    inputs, test_ids, ref_ids = _analysis_inputs(project, options)
    if len(test_ids) < MIN_IMAGES:
        raise NotEnoughImages(f"only {len(test_ids)} readable image(s) to analyse; Oddscope needs at least "
                              f"{MIN_IMAGES}")
    X = load_features(project, key, test_ids)
    mode = "reference" if len(ref_ids) else "unsupervised"
    memory = load_features(project, key, ref_ids) if len(ref_ids) else X
    n = project.n_items
    ANALYSIS.write(project, None)  # until this analysis is complete
    project.save_array(TEST_IDS, test_ids)
    drop_indexes(project)  # built for the previous analysis

    detectors = {name: _detector_arguments(name, options) for name in options.detectors}
    score_detectors(project, detectors, X, memory, test_ids, key, mode, run=_scoring(options), progress=progress,
                    timings=timings)
    refresh_spaces(project, detectors, progress)
    ranking, space = split_space(RANKING.read(project))
    if ranking not in options.detectors or (space and space not in spaces(project)):
        RANKING.write(project, options.detectors[0])

    if options.make_map:
        t0 = time.perf_counter()
        progress.update("map", 0, 1)
        coords, projection = _map(X, options, progress)
        project.save_array(MAP_ARRAY, scatter(coords, test_ids, n))
        project.layout.models_dir.mkdir(exist_ok=True)
        projection.save(project.layout.map_model)
        timings["map"] = time.perf_counter() - t0
        sampled = {"fit_rows": len(projection.embedding_)} if len(projection.embedding_) < len(X) else {}
        project.record_run("map", "umap", {"n": len(test_ids), **sampled}, key, timings["map"])
        progress.update("map", 1, 1)

    if options.make_clusters:
        t0 = time.perf_counter()
        progress.update("clusters", 0, 1)
        for column, labels in cluster_all(X).items():
            project.save_array(column, scatter(labels, test_ids, n, fill=-1))
        timings["clusters"] = time.perf_counter() - t0
        project.record_run("clusters", "clusters", {}, key, timings["clusters"])
        progress.update("clusters", 1, 1)
    ANALYSIS.write(project, {"inputs": inputs, "mode": mode})
    return mode


def _detector_arguments(name: str, options: IndexOptions) -> dict:
    """A detector's constructor arguments from the options: ``k`` and ``pca`` of the plain kNN detectors."""
    if name not in PLAIN_KNN:
        return {}
    return {"k": options.k, **({"pca": options.knn_pca} if options.knn_pca else {})}


def _scoring(options: IndexOptions):
    """How detectors are fitted and score: in this process (None), or on the Ray cluster (kNN queries spread,
    the other detectors fitted on a sample and scored in blocks)."""
    if options.cluster:
        from oddscope.core.workflows.cluster.scoring import ClusterScoring

        return ClusterScoring(options.fit_sample)
    return None


def _map(X: np.ndarray, options: IndexOptions, progress) -> tuple[np.ndarray, MapProjection]:
    """``(coordinates, fitted map)``: UMAP of every row here, or on the Ray cluster fitted on a sample and the
    other rows placed in parallel blocks."""
    if options.cluster:
        from oddscope.core.workflows.cluster.mapping import map_on_cluster

        return map_on_cluster(X, options.fit_sample, progress=progress)
    projection = MapProjection().fit(X, progress=progress)
    return projection.embedding_, projection


def write_skipped_report(project: Project) -> pd.DataFrame:
    """The project's skipped report (``layout.skipped_report``): every file not indexed, with its reason.

    Returns the table it wrote (columns ``path``, absolute, and ``reason``).
    """
    skipped = project.skipped()
    skipped["path"] = project.resolve_all(skipped["path"])
    skipped.to_csv(project.layout.skipped_report, index=False)
    return skipped
