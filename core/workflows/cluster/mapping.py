"""The map on the cluster: UMAP fitted on a sample, every other item placed with ``transform`` in Ray tasks.

UMAP's fit does not spread over machines and grows faster than linearly, so on the cluster it learns the map
from a seeded sample (:func:`~.blocks.sample_rows`, :data:`~.blocks.FIT_SAMPLE` rows by default) and the
fitted model, put in the object store once, places the other items in parallel blocks
(:meth:`oddscope.core.models.projection.MapProjection.transform`).  The sampled items keep the coordinates of
the fit; a placed item lands among its nearest sampled items, as a new image added to a single-machine map
would.  A collection no larger than the sample is fitted whole: the map is the single path's.  UMAP's
transform draws random negative samples per call, so a placed item's coordinates depend (slightly) on the
other items of its block: the map is the same picture, not the same numbers, as one ``transform`` of all.
"""

from __future__ import annotations

import numpy as np

from oddscope.core.models.projection import MapProjection
from oddscope.core.workflows.cluster.blocks import FIT_SAMPLE, map_blocks, sample_rows


def map_on_cluster(X: np.ndarray, fit_sample: int = FIT_SAMPLE, seed: int = 0,
                   progress=None) -> tuple[np.ndarray, MapProjection]:
    """``(coordinates of every row of X, the fitted map)``; the map is fitted on ``fit_sample`` rows at most."""
    rows = sample_rows(len(X), fit_sample, seed)
    if rows is None:
        projection = MapProjection().fit(X, progress=progress)
        return projection.embedding_, projection
    projection = MapProjection().fit(X[rows], progress=progress)
    rest = np.setdiff1d(np.arange(len(X)), rows)
    coords = np.empty((len(X), 2), dtype=np.float32)
    coords[rows] = projection.embedding_
    coords[rest] = np.concatenate(map_blocks(_place_block, projection, np.ascontiguousarray(X[rest]),
                                             progress=progress, stage="map: placing"))
    return coords, projection


def _place_block(projection: MapProjection, X: np.ndarray, start: int, stop: int) -> np.ndarray:
    """A Ray task: map coordinates of rows ``start:stop`` of ``X``."""
    return projection.transform(X[start:stop])
