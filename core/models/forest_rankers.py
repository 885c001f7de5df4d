"""SNAD's active anomaly detectors as peers of our ranker: AAD forest and PineForest (PyPI ``coniferest``).

Why: the SNAD team's methods are the other widely used active-learning anomaly detectors besides
Astronomaly's, so ``evaluate active`` measures ours against them too.  Both are isolation forests that
learn from yes/no answers: AAD (Das et al. 2017) re-weights the forest's leaves so that items labelled
anomalous score above a quantile and nominal ones below; PineForest grows spare trees and keeps those that
isolate the labelled anomalies fastest.  They are an optional extra (``pip install 'oddscope[peers]'``):
the registry lists them without the package and says how to add it.

As SNAD's sessions do, the forest is built once (``prepare``) and refitted on every label; a 0-5 relevance
becomes "anomaly" (interesting) at or above 2.5 and "regular" below.  The forest splits one feature at a
time, so the encoder's 1280 dimensions are reduced by PCA first (``n_components``, 10 as Protege).  With
no labels both show the plain anomaly ranking, as the other peers do (the simulated user then starts from
the same first page for every method); with labels, they rank by their own forest's score.
"""

from __future__ import annotations

import numpy as np

from oddscope.core.models.rankers import RELEVANCE_MAX, Ranker, reduce_features


class _ConiferestRanker(Ranker):
    """A coniferest forest refitted on the labels; subclasses say which forest (``_forest``)."""

    def __init__(self, random_state=0, n_components=10, n_trees=100, n_jobs=-1):
        super().__init__(random_state)
        self.n_components = n_components
        self.n_trees = n_trees
        self.n_jobs = n_jobs
        self._reduced = None
        self._model = None

    def _forest(self, n_subsamples):
        """The coniferest model; ``n_subsamples`` is its default 256, or every item of a smaller set."""
        raise NotImplementedError

    def _prepare(self, X, progress):
        self._reduced = np.ascontiguousarray(reduce_features(X, self.n_components, self.random_state),
                                             dtype=np.float64)
        self._model = self._forest(min(256, X.shape[0])).fit(self._reduced)

    def _rank(self, anomaly, idx, y):
        if idx.size == 0:
            return anomaly, None
        from coniferest.label import Label

        labels = np.where(y >= RELEVANCE_MAX / 2, Label.ANOMALY, Label.REGULAR)
        self._model.fit_known(self._reduced, self._reduced[idx], labels)
        return -self._model.score_samples(self._reduced), None  # coniferest: lower = more anomalous


class AadRanker(_ConiferestRanker):
    """SNAD's AAD forest (``coniferest.aadforest.AADForest`` with its defaults, ``n_trees`` trees)."""

    name = "aad"

    def _forest(self, n_subsamples):
        from coniferest.aadforest import AADForest

        return AADForest(n_trees=self.n_trees, n_subsamples=n_subsamples, n_jobs=self.n_jobs,
                         random_seed=self.random_state)


class PineForestRanker(_ConiferestRanker):
    """SNAD's PineForest (``coniferest.pineforest.PineForest`` with its defaults, ``n_trees`` kept)."""

    name = "pineforest"

    def _forest(self, n_subsamples):
        from coniferest.pineforest import PineForest

        return PineForest(n_trees=self.n_trees, n_subsamples=n_subsamples, n_jobs=self.n_jobs,
                          random_seed=self.random_state)
