"""Active learning on a project: a ranker prepared once, refitted after every label.

The ranker (see :mod:`oddscope.core.models.rankers`) works on positions in the
project's analysed items (``test_ids``); this module maps labels from the store
onto those positions and writes the result back as per-item arrays
``rank_<method>`` and ``relevance_<method>``, which the export table, the CLI
and the app read like any detector score.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from oddscope.core.models.registry import RANKERS, make_ranker
from oddscope.core.progress import as_progress
from oddscope.core.project.layout import (
    ANOMALY_DETECTOR,
    ENCODER,
    RANKING,
    TEST_IDS,
    rank_array,
    relevance_array,
    score_array,
    space_name,
    split_space,
)
from oddscope.core.project.store import Project
from oddscope.core.workflows.spaces import space_features


def base_detector(project: Project) -> str:
    """The detector whose scores are the anomaly prior of the active rankers."""
    ranking = RANKING.read(project)
    return ANOMALY_DETECTOR.read(project) or (ranking if split_space(ranking)[0] not in RANKERS
                                              else RANKING.default)


def _in_space(detector: str, space: str | None) -> str:
    """The detector of that name in ``space`` (a raw or other space's detector moves to it)."""
    return space_name(split_space(detector)[0], space)


class ActiveSession:
    """Holds features and a prepared ranker in memory so each refit is cheap.

    ``method`` may name a guided feature space, ``oddscope@<space>`` (``layout.space_name``): the ranker
    then learns on that space's features, from its detector's scores, and stores ``rank_oddscope@<space>``.
    """

    def __init__(self, project: Project, method: str = "oddscope", base: str | None = None, progress=None,
                 **ranker_kw):
        self.method = method
        ranker, space = split_space(method)
        self.base = base or _in_space(base_detector(project), space)
        self.ids = project.load_array(TEST_IDS)
        if self.ids is None:
            raise ValueError(f"{project.root} has not been analysed yet; run `oddscope index`")
        anomaly = project.load_array(score_array(self.base))
        if anomaly is None:
            raise ValueError(f"no scores of detector {self.base!r} in {project.root}")
        self.n_items = project.n_items
        self.anomaly = anomaly[self.ids].astype(np.float64)
        progress = as_progress(progress)
        progress.update("active: reading features", 0, 1)
        self.X = space_features(project, self.ids, space)
        self._position = pd.Series(np.arange(len(self.ids)), index=self.ids)
        self.ranker = make_ranker(ranker, **ranker_kw).prepare(self.X, progress)

    def refit(self, labels: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """Refit on the store's labels; returns per-item (scores, predicted relevance or None)."""
        scored = labels["score"].dropna()
        scored = scored[scored.index.isin(self._position.index)]
        self.ranker.fit(self.X, self.anomaly, self._position[scored.index].to_numpy(), scored.to_numpy())
        relevance = self.ranker.relevance()
        return self._per_item(self.ranker.scores()), None if relevance is None else self._per_item(relevance)

    def _per_item(self, values: np.ndarray) -> np.ndarray:
        out = np.full(self.n_items, np.nan, dtype=np.float32)
        out[self.ids] = values
        return out

    def save(self, project: Project, scores: np.ndarray, relevance: np.ndarray | None) -> None:
        """Store the ranking and make it the project's active one."""
        project.save_array(rank_array(self.method), scores)
        if relevance is not None:
            project.save_array(relevance_array(self.method), relevance)
        ANOMALY_DETECTOR.write(project, self.base)
        RANKING.write(project, self.method)


def apply_active_ranking(project: Project, method: str, base: str | None = None) -> float:
    """Fit ``method`` on the current labels, store it as the active ranking; returns seconds taken."""
    t0 = time.perf_counter()
    session = ActiveSession(project, method, base)
    scores, relevance = session.refit(project.labels())
    session.save(project, scores, relevance)
    seconds = time.perf_counter() - t0
    project.record_run("ranking", method, {"base": session.base, "labels": int(project.labels()["score"].notna().sum())},
                       ENCODER.read(project)["key"], seconds)
    return seconds
