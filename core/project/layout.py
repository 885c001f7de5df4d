"""The on-disk vocabulary of a project: where each file lives, what each array and setting is called.

Every name below is part of the project format: a project written by one
version is read by the next, so a name changes here or nowhere.  Code outside
this module asks :class:`ProjectLayout` (``project.layout``) for a path, and the
functions and :class:`Setting` objects below for an array or setting name;
it never spells one itself.

Layout of a project folder::

    oddscope.sqlite                  items, metadata, labels (+ undo history), runs, settings
    writer.lock                      held (OS lock) by the one process writing the project
    features/<key>.npy               feature matrix per encoder (memory-mapped, row = item id)
    shards/<key>/<shard>.npz         features a cluster run computed and has not yet copied into the matrix
    index/<key>-<metric>-<n>.bin     neighbour index caches of the n analysed items' features
    arrays/<name>.npy                per-item arrays: detector scores, rankings, map coordinates, clusters
    models/map.joblib                fitted objects that place new items (the map)
    models/patches.npz               the per-pixel map model: normal-patch bank or pool, calibration, corrections
    models/guidance/<space>.npz      a guided feature space's fitted transform (see space_name)
    maps/pixel_maps.npy              per-pixel anomaly maps (row = item id, float16, map_size^2 cells)
    maps/defects/<item id>.png       regions the user painted as defects (mask labels)
    skipped.csv                      files that could not be read, with the reason
    thumbnails/                      the app's thumbnail cache

Per-item arrays (row = item id, NaN or -1 where an item has none)::

    test_ids                 the analysed (test) items' ids, in analysis order
    score_<detector>         a detector's anomaly scores
    rank_<method>            an active-learning method's ranking scores
    relevance_<method>       its predicted relevance, where it predicts one
    umap                     map coordinates (n x 2)
    score_patchmap           the per-pixel map's image score (NaN: no current map for the item)
    cluster_<method>         cluster labels per clusterer

A guided feature space (``oddscope guidance``) is named; its detectors and rankings are
the raw ones qualified by the space, ``<name>@<space>`` (:func:`space_name`), so its
arrays are ``score_knn@<space>``, ``rank_oddscope@<space>``, its neighbour indexes
``index/<key>@<space>-...``, and ``rank``, ``export`` and the app choose a space by
choosing such a name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DB_NAME = "oddscope.sqlite"
SKIPPED_REPORT = "skipped.csv"  # named in messages too, so users know where to look


@dataclass(frozen=True)
class ProjectLayout:
    """The paths of one project folder at ``root``; creates nothing."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    def is_project(self) -> bool:
        """Whether ``root`` holds a project (its database), e.g. a recent project that still exists."""
        return self.db.exists()

    @property
    def db(self) -> Path:
        return self.root / DB_NAME

    @property
    def lock(self) -> Path:
        return self.root / "writer.lock"

    @property
    def features_dir(self) -> Path:
        return self.root / "features"

    def features(self, key: str) -> Path:
        """The feature matrix of the encoder (and weights) named ``key``."""
        return self.features_dir / f"{key}.npy"

    def feature_shards(self, key: str) -> Path:
        """Where cluster workers write ``key`` features shard by shard, before they join the matrix."""
        return self.root / "shards" / key

    @property
    def index_dir(self) -> Path:
        return self.root / "index"

    def index(self, key: str, metric: str, n: int) -> Path:
        """The neighbour index of the ``n`` analysed items' ``key`` features under ``metric``."""
        return self.index_dir / f"{key}-{metric}-{n}.bin"

    @property
    def arrays_dir(self) -> Path:
        return self.root / "arrays"

    def array(self, name: str) -> Path:
        return self.arrays_dir / f"{name}.npy"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def map_model(self) -> Path:
        return self.models_dir / "map.joblib"

    @property
    def patch_model(self) -> Path:
        return self.models_dir / "patches.npz"

    def guidance_model(self, space: str) -> Path:
        """The fitted transform of the guided feature space ``space``."""
        return self.models_dir / "guidance" / f"{space}.npz"

    @property
    def maps_dir(self) -> Path:
        return self.root / "maps"

    @property
    def pixel_maps(self) -> Path:
        return self.maps_dir / "pixel_maps.npy"

    def defect_mask(self, item_id: int) -> Path:
        """The region the user painted as a defect on item ``item_id`` (a binary PNG)."""
        return self.maps_dir / "defects" / f"{int(item_id)}.png"

    @property
    def skipped_report(self) -> Path:
        return self.root / SKIPPED_REPORT

    @property
    def thumbnails(self) -> Path:
        return self.root / "thumbnails"


# ------------------------------------------------------------------ per-item arrays
TEST_IDS = "test_ids"
MAP_ARRAY = "umap"
SCORE_PREFIX = "score_"
CLUSTER_PREFIX = "cluster_"
# One per clusterer of oddscope.core.models.clustering (which the project layer may not import).
CLUSTER_ARRAYS = ("cluster_kmeans", "cluster_gmm", "cluster_ward")


def score_array(detector: str) -> str:
    return f"{SCORE_PREFIX}{detector}"


PIXEL_MAP_SCORE = score_array("patchmap")  # a row's map is current exactly where this is finite


def rank_array(method: str) -> str:
    return f"rank_{method}"


def relevance_array(method: str) -> str:
    return f"relevance_{method}"


def detector_of(array: str) -> str | None:
    """The detector whose scores ``array`` holds, or None for any other array."""
    return array[len(SCORE_PREFIX):] if array.startswith(SCORE_PREFIX) else None


# ------------------------------------------------------------------ feature spaces
SPACE_SEPARATOR = "@"
RAW_SPACE = "raw"  # what evaluations call the encoder's own features; never a guided space's name


def space_name(name: str, space: str | None) -> str:
    """``name`` (a detector, a ranker, a feature key) in the guided space ``space``; None: the raw features."""
    return f"{name}{SPACE_SEPARATOR}{space}" if space else name


def split_space(name: str) -> tuple[str, str | None]:
    """``(name, space)`` of a possibly space-qualified name; space is None for the raw features."""
    base, sep, space = name.partition(SPACE_SEPARATOR)
    return (base, space) if sep else (name, None)


# ------------------------------------------------------------------------ settings
@dataclass(frozen=True)
class Setting:
    """A project setting: its key in the settings table and the value it has until first written."""

    key: str
    default: object = None

    def read(self, project):
        value = project.get_setting(self.key)
        return self.default if value is None else value

    def write(self, project, value) -> None:
        project.set_setting(self.key, value)


ENCODER = Setting("encoder")  # the encoder's description and feature ``key``: written by indexing
PREPROCESS = "preprocess"  # ENCODER's entry naming the science steps before the encoder (canonical string)
RANKING = Setting("ranking", "knn")  # the active ranking: a detector or an active-learning method
ANOMALY_DETECTOR = Setting("anomaly_detector")  # the detector the active-learning methods start from
ANALYSIS = Setting("analysis")  # inputs of the last complete analysis: a re-index that changes none keeps it
PIXEL_MAPS = Setting("pixel_maps")  # the per-pixel map model's mode, encoder, settings and fit time
IMAGE_ROOT = Setting("image_root")  # the indexed image folder, against which CSV paths are also tried
GUIDANCE = Setting("guidance", {})  # the guided feature spaces: {name: spec}, written by workflows.guidance
