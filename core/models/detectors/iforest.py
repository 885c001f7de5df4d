"""Isolation-forest detector (``iforest``)."""

from __future__ import annotations

from sklearn.ensemble import IsolationForest

from oddscope.core.models.detectors.base import Detector


class IsolationForestDetector(Detector):
    """Isolation forest: anomalies are isolated by few random axis-aligned splits."""

    name = "iforest"

    def __init__(self, n_estimators=200, seed=0):
        self.n_estimators, self.seed = int(n_estimators), int(seed)

    def params(self):
        return {"n_estimators": self.n_estimators, "seed": self.seed}

    def _fit(self, X):
        self.forest_ = IsolationForest(n_estimators=self.n_estimators, random_state=self.seed).fit(X)

    def _score(self, X, exclude_self):
        return -self.forest_.score_samples(X)
