"""Nearest neighbours of image features: hnswlib graphs and an exact fallback.

Every kNN-based detector scores an item by its distances to its nearest
neighbours, so this is the step that decides whether a million-image
collection scores in minutes or in days.  :class:`KnnIndex` wraps an hnswlib
graph (approximate, ~log N per query) for the ``cosine`` and ``l2`` metrics;
``l1`` has no hnswlib space, so it is answered exactly by chunked brute force.
:func:`knn_graph` gives every row its nearest other rows (the rankers' graph).

Conventions shared by both paths:

* distances: ``cosine`` = 1 - cos(a, b), ``l2`` = Euclidean, ``l1`` = Manhattan;
* ``exclude_self``: the queries are the indexed rows themselves, in order, and
  a row must never be its own neighbour (the self index is removed even when
  duplicate rows tie with it at distance 0);
* ``k`` larger than the number of available neighbours (``n``, or ``n - 1``
  with ``exclude_self``) is clipped, so the result has fewer columns; when no
  neighbour is available at all a ``ValueError`` is raised.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import hnswlib
import numpy as np
from scipy.spatial.distance import cdist

from oddscope.core.models.registry import METRICS
from oddscope.core.models.validation import check_features
from oddscope.core.progress import Progress, as_progress

_HNSW_SPACES = {"cosine": "cosine", "l2": "l2"}
_BUILD_CHUNK = 10_000
_GRAPH_CHUNK = 16_384  # items queried per hnswlib call of knn_graph: progress and Cancel between calls
_EXACT_ROWS = 1024  # rows per block of the exact graph (a block holds rows x N distances)
_BRUTE_FORCE_BYTES = 256 * 2**20  # memory brute force may hold per chunk of queries


def _threads(num_threads: int) -> int:
    """hnswlib's ``set_num_threads(-1)`` is not "every core": it builds about 2.4x slower than naming the cores,
    so a non-positive count is resolved to the cores here."""
    return num_threads if num_threads > 0 else (os.cpu_count() or 1)


def _available_k(k: int, n: int, exclude_self: bool) -> int:
    """Clip ``k`` to the neighbours that exist; raise when there are none."""
    if int(k) < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    available = n - 1 if exclude_self else n
    if available < 1:
        raise ValueError(
            f"no neighbours to return: {n} indexed item(s)"
            + (" and each must exclude itself" if exclude_self else "")
        )
    return min(int(k), available)


def _drop_self(indices, distances, self_ids, k):
    """Remove each row's own id from a (k+1)-wide answer, keeping k columns.

    When the row itself is missing (a duplicate tied with it and pushed it
    out), the farthest column is dropped instead.
    """
    is_self = indices == self_ids[:, None]
    missing = ~is_self.any(axis=1)
    is_self[missing, -1] = True
    first_self = is_self.argmax(axis=1)
    keep = np.ones_like(is_self)
    keep[np.arange(len(indices)), first_self] = False
    n = len(indices)
    return indices[keep].reshape(n, k), distances[keep].reshape(n, k)


def _exact_distances(X, Q, idx, metric):
    """Float64 distances between each query and its chosen neighbours."""
    A = Q.astype(np.float64)[:, None, :]
    B = X[idx].astype(np.float64)
    if metric == "l1":
        return np.abs(A - B).sum(axis=2)
    if metric == "l2":
        return np.sqrt(((A - B) ** 2).sum(axis=2))
    norms = np.maximum(np.linalg.norm(A, axis=2) * np.linalg.norm(B, axis=2), 1e-30)
    return 1.0 - (A * B).sum(axis=2) / norms


def _candidate_selector(X, Q, metric):
    """``select(start, stop, k, exclude_self)``: the ``k`` nearest rows of ``X`` for queries ``start:stop``, unordered.

    Selection only, in float32, so constant per-query terms are dropped: cosine
    ranks by -<q, x> of normalised rows, l2 by |x|² - 2<q, x>.  With torch
    installed its matmul + top-k (two to four times faster than numpy's
    argpartition); without it (the desktop bundle) numpy.
    """
    try:
        import torch  # here, not at the top: an hnswlib-only caller (the app) never pays its import
    except ImportError:
        torch = None
    xp = torch if torch is not None else np
    if torch is not None:
        X, Q = torch.from_numpy(X), torch.from_numpy(Q)
    if metric == "cosine":
        X, Q = _normalise_rows(X), _normalise_rows(Q)
    x_sq = (X * X).sum(1) if metric == "l2" else None

    def select(start, stop, k, exclude_self):
        q = Q[start:stop]
        if metric == "l1":
            keys = torch.cdist(q, X, p=1.0) if torch is not None else cdist(q, X, "cityblock")
        elif metric == "cosine":
            keys = -(q @ X.T)
        else:
            keys = x_sq[None, :] - 2 * (q @ X.T)
        if exclude_self:
            keys[xp.arange(stop - start), xp.arange(start, stop)] = xp.inf
        if torch is None:
            return np.argpartition(keys, k - 1, axis=1)[:, :k]
        return torch.topk(keys, k, dim=1, largest=False, sorted=False).indices.numpy()

    return select


def brute_force_knn(X, Q, k, metric="cosine", exclude_self=False, chunk=None):
    """Exact k nearest neighbours of each row of ``Q`` among the rows of ``X``.

    Queries are processed ``chunk`` rows at a time so that at most ~256 MB of
    distances are held (``chunk=None`` picks that size).  Neighbours are
    selected in float32 (see :func:`_candidate_selector`); their distances are then recomputed in float64
    so the returned values match scipy's.  Returns ``(indices int64 [n, k'],
    distances float32 [n, k'])`` sorted by distance, with ``k' = min(k,
    available)`` (see module doc).
    """
    METRICS.entry(metric)
    X = check_features(X, "X")
    Q = check_features(Q, "Q", dim=X.shape[1])
    if exclude_self and len(Q) != len(X):
        raise ValueError("exclude_self needs Q to be X itself (same rows, same order)")
    k = _available_k(k, len(X), exclude_self)
    if chunk is None:  # bound both the key block and the float64 refinement
        chunk = max(1, _BRUTE_FORCE_BYTES // max(8 * len(X), 16 * k * X.shape[1]))
    select = _candidate_selector(X, Q, metric)
    indices = np.empty((len(Q), k), dtype=np.int64)
    distances = np.empty((len(Q), k), dtype=np.float32)
    for start in range(0, len(Q), chunk):
        stop = min(start + chunk, len(Q))
        part = select(start, stop, k, exclude_self)
        exact = _exact_distances(X, Q[start:stop], part, metric)
        order = np.argsort(exact, axis=1, kind="stable")
        indices[start:stop] = np.take_along_axis(part, order, axis=1)
        distances[start:stop] = np.maximum(np.take_along_axis(exact, order, axis=1), 0.0)
    return indices, distances


def _normalise_rows(A):
    """Rows scaled to unit length (a torch tensor or a numpy array)."""
    norms = (A * A).sum(1, keepdims=True) ** 0.5 if isinstance(A, np.ndarray) else A.norm(dim=1, keepdim=True)
    return A / norms.clip(1e-30)


class KnnIndex:
    """Nearest-neighbour index over a fixed feature matrix.

    ``cosine``/``l2`` use an hnswlib graph (``M``, ``ef_construction`` trade
    build time for recall; at query time ``ef`` defaults to ``max(2k, 50)``,
    and a given ``ef`` is raised to ``k`` so it never truncates results).  ``l1`` keeps the
    matrix and answers exactly with :func:`brute_force_knn`.  Builds are
    reproducible for a given ``seed`` only with ``num_threads=1``: parallel
    insertion order varies between runs (results still agree to ~recall).
    """

    def __init__(self, metric="cosine", M=16, ef_construction=200, ef=None, seed=0, num_threads=-1):
        self._metric = METRICS.entry(metric).name
        self.M = int(M)
        self.ef_construction = int(ef_construction)
        self.ef = ef
        self.seed = int(seed)
        self.num_threads = _threads(int(num_threads))
        self._hnsw = None
        self._X = None
        self._n = 0
        self._dim = None

    @property
    def metric(self) -> str:
        return self._metric

    @property
    def n(self) -> int:
        return self._n

    @property
    def dim(self) -> int | None:
        return self._dim

    def build(self, X, progress=None, stage: str = "Building neighbour index") -> "KnnIndex":
        """Index the rows of ``X`` (row number = item id); reports ``stage`` and honours cancel per chunk."""
        X = check_features(X)
        blocks = (X[start:start + _BUILD_CHUNK] for start in range(0, len(X), _BUILD_CHUNK))
        return self.build_blocks(blocks, *X.shape, progress=progress, stage=stage)

    def build_blocks(self, blocks, n: int, dim: int, progress=None,
                     stage: str = "Building neighbour index") -> "KnnIndex":
        """Index ``n`` rows of ``dim`` features that arrive as consecutive ``blocks`` (row number = item id),
        reporting ``stage`` and honouring cancel per block: a matrix read (and reduced) block by block from disk
        is indexed without ever being whole in memory."""
        progress = as_progress(progress)
        progress.update(stage, 0, n)
        if self._metric == "l1":
            X, index = np.empty((n, dim), np.float32), None
        else:
            X, index = None, hnswlib.Index(space=_HNSW_SPACES[self._metric], dim=dim)
            index.init_index(max_elements=n, ef_construction=self.ef_construction, M=self.M, random_seed=self.seed)
            index.set_num_threads(self.num_threads)
        done = 0
        for block in blocks:
            block = check_features(block, dim=dim)
            stop = done + len(block)
            if stop > n:
                raise ValueError(f"the blocks hold more than the {n} rows announced")
            if index is None:
                X[done:stop] = block
            else:
                index.add_items(block, np.arange(done, stop))
            done = stop
            progress.update(stage, done, n)
        if done != n:
            raise ValueError(f"the blocks held {done} rows, {n} were announced")
        self._X, self._hnsw = X, index
        self._n, self._dim = n, dim
        return self

    def _require_built(self):
        if self._n == 0:
            raise ValueError("the index is empty: call build() or load() first")

    def _search(self, Q, k, self_ids=None):
        """k nearest neighbours of ``Q``; ``self_ids[i]`` is never returned for row i."""
        k = _available_k(k, self._n, self_ids is not None)
        ask = min(k + (self_ids is not None), self._n)
        if self._metric == "l1":
            indices, distances = brute_force_knn(self._X, Q, ask, "l1")
        else:
            self._hnsw.set_ef(max(self.ef, ask) if self.ef else max(2 * ask, 50))
            labels, distances = self._hnsw.knn_query(Q, k=ask, num_threads=self.num_threads)
            indices = labels.astype(np.int64)
            distances = np.maximum(distances, 0.0)
            if self._metric == "l2":
                distances = np.sqrt(distances)
        if self_ids is not None:
            indices, distances = _drop_self(indices, distances, self_ids, k)
        return indices, distances.astype(np.float32, copy=False)

    def query(self, Q, k, exclude_self=False):
        """Neighbours of new vectors ``Q`` -> ``(indices int64 [n, k'], distances float32 [n, k'])``.

        ``exclude_self=True`` means ``Q`` are the indexed rows themselves, in
        order; each row's own index is then left out.
        """
        self._require_built()
        Q = check_features(Q, "Q", dim=self._dim)
        if exclude_self and len(Q) != self._n:
            raise ValueError(f"exclude_self needs the {self._n} indexed rows as Q, got {len(Q)} rows")
        return self._search(Q, k, np.arange(len(Q)) if exclude_self else None)

    def query_excluding(self, Q, k, self_ids=None):
        """Neighbours of vectors ``Q``, where row ``i`` never gets ``self_ids[i]`` (None: exclude nothing).

        A block of the indexed rows with their row numbers answers as those rows do in ``query(X, k,
        exclude_self=True)``: how a query is split into blocks (over threads, processes or machines)
        never changes its result.
        """
        self._require_built()
        Q = check_features(Q, "Q", dim=self._dim)
        if self_ids is not None:
            self_ids = np.asarray(self_ids, dtype=np.int64).reshape(-1)
            if len(self_ids) != len(Q):
                raise ValueError(f"self_ids needs one id per row of Q: {len(self_ids)} for {len(Q)} rows")
        return self._search(Q, k, self_ids)

    def query_rows(self, rows, k, exclude_self=True):
        """Neighbours of already-indexed items, given by row number."""
        self._require_built()
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if rows.size == 0:
            raise ValueError("rows is empty")
        if rows.min() < 0 or rows.max() >= self._n:
            raise ValueError(f"rows must lie in [0, {self._n}), got {rows.min()}..{rows.max()}")
        Q = self._X[rows] if self._metric == "l1" else self._hnsw.get_items(rows).astype(np.float32)
        return self._search(Q, k, rows if exclude_self else None)

    def save(self, path) -> None:
        """Write the index to ``path`` plus a ``path.json`` sidecar with metric, dim, n."""
        self._require_built()
        path = Path(path)
        if self._metric == "l1":
            with open(path, "wb") as f:
                np.save(f, self._X)
        else:
            self._hnsw.save_index(str(path))
        meta = {"metric": self._metric, "dim": self._dim, "n": self._n, "M": self.M,
                "ef_construction": self.ef_construction, "ef": self.ef, "seed": self.seed}
        Path(f"{path}.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, path, num_threads=-1) -> "KnnIndex":
        path = Path(path)
        meta = json.loads(Path(f"{path}.json").read_text())
        index = cls(meta["metric"], meta["M"], meta["ef_construction"], meta["ef"], meta["seed"], num_threads)
        if index.metric == "l1":
            with open(path, "rb") as f:
                index._X = np.load(f)
        else:
            index._hnsw = hnswlib.Index(space=_HNSW_SPACES[index.metric], dim=meta["dim"])
            index._hnsw.load_index(str(path), max_elements=meta["n"])
            index._hnsw.set_num_threads(index.num_threads)
        index._n, index._dim = meta["n"], meta["dim"]
        return index


def reduced_metric(metric: str, reduced: bool) -> str:
    """The metric of the index over features reduced by PCA (``reduced``) for searches in ``metric``.

    For cosine the rows are L2-normalised before PCA and the index is Euclidean: centring distorts angles
    but keeps Euclidean distances, which for unit rows give cosine distances back (``|a - b|^2 / 2``,
    :func:`in_metric_units`)."""
    return "l2" if reduced and metric == "cosine" else metric


def in_metric_units(dist, metric: str, index_metric: str) -> np.ndarray:
    """An index's distances (float64) in ``metric`` units: cosine from the Euclidean distances of unit rows
    when the index is the reduced one of :func:`reduced_metric`."""
    dist = np.asarray(dist, dtype=np.float64)
    return dist**2 / 2 if metric == "cosine" and index_metric == "l2" else dist


class IndexCache:
    """Indexes built once per metric and fit matrix, for detectors fitted on the same features.

    ``knn`` and ``knn-ls`` both search cosine neighbours of the same items, ``knn-l2`` and ``lof`` both
    Euclidean ones: without sharing, an analysis (and every guided space's re-score) builds each graph twice,
    the longest step of scoring at 10^5 items.  The cache holds the matrices it indexed, so a key (the
    matrix's identity) can never be reused by another array.
    """

    def __init__(self):
        self._built: dict[tuple, tuple[np.ndarray, KnnIndex]] = {}

    def index(self, metric: str, X: np.ndarray) -> KnnIndex:
        """The index of ``metric`` over ``X``, built on the first request."""
        key = (metric, id(X), X.shape)
        if key not in self._built:
            self._built[key] = (X, KnnIndex(metric).build(X))
        return self._built[key][1]


def build_index(metric: str, X: np.ndarray, cache: IndexCache | None = None) -> KnnIndex:
    """A :class:`KnnIndex` of ``metric`` over ``X``: from ``cache`` when given, else built now."""
    return cache.index(metric, X) if cache is not None else KnnIndex(metric).build(X)


def knn_graph(X, k, exact_limit, seed=0, num_threads=-1, progress=None, stage="knn graph"):
    """Each row's ``k`` nearest other rows by Euclidean distance: (neighbours, distances), each (N, k).

    Exact chunked brute force up to ``exact_limit`` rows (deterministic, numpy
    only, so a GUI process that builds a graph never imports torch); above it
    a :class:`KnnIndex` (``l2``) built for speed (``M=12``,
    ``ef_construction=64``: a graph that only smooths labels tolerates a few
    missed neighbours), O(N log N), whose multi-threaded construction can
    differ slightly between runs.  Progress runs from 0 to N on the exact path,
    0 to 2N (build, then queries) on the approximate one.
    """
    X = check_features(X)
    progress = as_progress(progress)
    n = X.shape[0]
    if n <= exact_limit:
        sq = (X**2).sum(1)
        nbrs = np.empty((n, k), dtype=np.int64)
        dist = np.empty((n, k))
        for start in range(0, n, _EXACT_ROWS):
            rows = np.arange(start, min(start + _EXACT_ROWS, n))
            d2 = sq[rows, None] + sq[None, :] - 2.0 * (X[rows] @ X.T)
            d2[np.arange(rows.size), rows] = np.inf
            part = np.argpartition(d2, k - 1, axis=1)[:, :k]
            pd2 = np.take_along_axis(d2, part, axis=1)
            sort = np.argsort(pd2, axis=1, kind="stable")
            nbrs[rows] = np.take_along_axis(part, sort, axis=1)
            dist[rows] = np.sqrt(np.maximum(np.take_along_axis(pd2, sort, axis=1), 0.0))
            progress.update(stage, rows[-1] + 1, n)
        return nbrs, dist
    index = KnnIndex("l2", M=12, ef_construction=64, ef=max(2 * (k + 1), 40), seed=seed, num_threads=num_threads)
    index.build(X, Progress(lambda _, done, total: progress.update(stage, done, 2 * total)))
    nbrs = np.empty((n, k), dtype=np.int64)
    dist = np.empty((n, k), dtype=np.float32)
    for start in range(0, n, _GRAPH_CHUNK):
        stop = min(start + _GRAPH_CHUNK, n)
        nbrs[start:stop], dist[start:stop] = index.query_rows(np.arange(start, stop), k)
        progress.update(stage, n + stop, 2 * n)
    return nbrs, dist
