"""The neighbour index of a project's analysed items, as saved in the project: over the features themselves, or
over the features reduced by the project's one PCA reducer when a full-width index would not fit in memory.

At survey scale a full-width index does not fit: 5,000,000 items x 1280 float32 features are 25 GB before the
graph.  Above :data:`FULL_INDEX_MAX_BYTES` the index holds the features reduced by PCA to :data:`REDUCED_DIMS`
dimensions (:class:`~oddscope.core.models.reduction.FeatureReducer`, L2-normalised first for cosine, as the kNN
detector's ``pca`` does), fitted on a seeded sample and applied block by block as the features are read, so the
n x 1280 matrix is never in memory.  Such an index only means something with its reducer: the two are saved
together (the reducer in a ``.reducer.joblib`` sidecar) and :class:`SearchIndex` always holds both, so queries
and distances are in the metric's units whichever index answers.  ``oddscope index --knn-pca N`` keeps its kNN
detector's reduced index the same way (:func:`oddscope.core.workflows.scoring.keep_index`).
"""

from __future__ import annotations

import os
from pathlib import Path

import joblib
import numpy as np

from oddscope.core.models.knn import KnnIndex, in_metric_units, reduced_metric
from oddscope.core.models.reduction import FeatureReducer
from oddscope.core.progress import as_progress

# The largest full-width index built (n x dim float32, the graph comes on top): 2 GiB is 420,000 items at 1280-d,
# which a desktop builds in minutes and holds beside the app; above it the index is a reduced one.
FULL_INDEX_MAX_BYTES = 2 * 2**30
REDUCED_DIMS = 256  # PCA dimensions of a reduced index: encoder features keep their neighbours (README, Survey scale)
REDUCER_FIT_ROWS = 50_000  # the seeded sample PCA is fitted on (the directions settle long before)
BLOCK_ROWS = 32_768  # feature rows read, reduced and indexed at a time (160 MB at 1280-d)
_REDUCER = ".reducer.joblib"  # sidecar of a reduced index: the reducer its rows went through


def needs_reduction(n: int, dim: int) -> bool:
    """Whether the index of ``n`` items of ``dim`` features is built reduced: too large at full width, and
    wider than the reduction."""
    return n * dim * 4 > FULL_INDEX_MAX_BYTES and dim > REDUCED_DIMS


class SearchIndex:
    """A :class:`KnnIndex` answering in ``metric``: over the features (``reducer`` None) or over them reduced by
    ``reducer``, whose queries go through it and whose distances come back in ``metric`` units."""

    def __init__(self, metric: str, index: KnnIndex, reducer: FeatureReducer | None = None):
        self.metric, self.index, self.reducer = metric, index, reducer

    @property
    def approximate(self) -> str | None:
        """What makes the answers approximate ("PCA to 256 dimensions"); None for a full-width index."""
        if self.reducer is None or self.reducer.pca_ is None:
            return None
        return f"PCA to {self.index.dim} dimensions"

    def query_rows(self, rows, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest other rows of indexed ``rows`` (the index's own vectors: no feature is read)."""
        return self._in_units(*self.index.query_rows(rows, k, exclude_self=True))

    def query(self, vectors, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest rows of new ``vectors`` (in the features' space; reduced here when the index is)."""
        vectors = np.asarray(vectors, dtype=np.float32)
        return self._in_units(*self.index.query(vectors if self.reducer is None else self.reducer.transform(vectors),
                                                k))

    def _in_units(self, rows, dist) -> tuple[np.ndarray, np.ndarray]:
        return rows, in_metric_units(dist, self.metric, self.index.metric).astype(np.float32)

    def save(self, path: Path) -> None:
        """Write the index and its sidecars under temporary names, then rename them, the index last: a reader
        that sees the index sees its reducer (and a full index never keeps an older reducer's sidecar)."""
        path = Path(path)
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_name(f".{os.getpid()}-{path.name}")
        self.index.save(tmp)
        if self.reducer is not None:
            joblib.dump(self.reducer, f"{tmp}{_REDUCER}")
        else:
            Path(f"{path}{_REDUCER}").unlink(missing_ok=True)
        for produced in sorted(tmp.parent.glob(tmp.name + "?*")):  # the sidecars
            os.replace(produced, path.parent / (path.name + produced.name[len(tmp.name):]))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path, metric: str) -> "SearchIndex":
        reducer_path = Path(f"{path}{_REDUCER}")
        return cls(metric, KnnIndex.load(path), joblib.load(reducer_path) if reducer_path.exists() else None)


def build_reduced(read_rows, n: int, metric: str, progress=None) -> SearchIndex:
    """The reduced index of ``n`` items whose features ``read_rows(rows)`` returns (float32, any rows): PCA fitted
    on a seeded sample of :data:`REDUCER_FIT_ROWS`, then every block of :data:`BLOCK_ROWS` read, reduced and
    indexed in turn.  Reports the stages and honours cancel per block."""
    progress = as_progress(progress)
    stage = f"Fitting PCA to {REDUCED_DIMS} dimensions on a sample"
    progress.update(stage, 0, 1)
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(n, REDUCER_FIT_ROWS, replace=False)) if n > REDUCER_FIT_ROWS else np.arange(n)
    reducer = FeatureReducer(REDUCED_DIMS, normalize=metric == "cosine", seed=0, svd_solver="randomized",
                             max_fit_rows=None).fit(read_rows(sample))
    progress.update(stage, 1, 1)
    blocks = (reducer.transform(read_rows(np.arange(start, min(start + BLOCK_ROWS, n))))
              for start in range(0, n, BLOCK_ROWS))
    dim = reducer.pca_.n_components_ if reducer.pca_ is not None else reducer.n_features_in_
    index = KnnIndex(reduced_metric(metric, reducer.pca_ is not None)).build_blocks(
        blocks, n, dim, progress, stage=f"Building the neighbour index (PCA to {dim} dimensions)")
    return SearchIndex(metric, index, reducer)
