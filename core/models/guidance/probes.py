"""How much of a nuisance a representation still holds: cross-validated probes that try to predict it.

Guidance succeeds when the probes are at chance: a linear probe (logistic regression, or
ridge for a continuous nuisance) shows what LEACE promises to remove; a small non-linear
probe (an MLP) shows what a linear eraser leaves behind.  Chance is the majority class's
share for a categorical nuisance and an R^2 of 0 for a continuous one.

Probes see the features reduced to at most :data:`PROBE_DIMS` PCA dimensions: a linear
map, so it adds nothing a linear probe could not read, and it keeps a probe on 10^4
1280-d items to seconds.  The PCA is fitted once on every probed row: it never sees the
nuisance, so fitting it outside the folds leaks nothing into them.  Classes keep their shares
per fold (stratified), and rows are subsampled to :data:`PROBE_MAX_ROWS` (stratified too) so a
probe never dominates a run.
"""

from __future__ import annotations

import warnings

import numpy as np

from oddscope.core.models.guidance.erasure import concept_matrix
from oddscope.core.models.validation import check_features

PROBE_DIMS = 64
PROBE_MAX_ROWS = 5_000
FOLDS = 3


def probe_nuisance(X, values, seed: int = 0, nonlinear: bool = True) -> dict:
    """``{"kind", "probe_linear", "probe_nonlinear", "probe_chance", "n"}`` for predicting ``values`` from ``X``.

    Accuracy for a categorical nuisance, R^2 for a continuous one (``kind`` says which).  ``nonlinear=False``
    runs the linear probe only (``probe_nonlinear`` is then None).
    """
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = check_features(X)
    values = np.asarray(values, dtype=object)
    Z, kind = concept_matrix(values)
    target = Z[:, 0] if kind == "continuous" else Z.argmax(axis=1)
    rows = _subsample(target, kind, seed)
    X, target = X[rows], target[rows]
    dims = min(PROBE_DIMS, X.shape[1], len(X) - 1)
    X = PCA(dims, random_state=seed).fit_transform(X)  # in the features' own geometry, as kNN sees them
    if kind == "categorical":
        counts = np.bincount(target)
        folds = min(FOLDS, int(counts[counts > 0].min()))
        if folds < 2:
            raise ValueError("every nuisance value needs at least 2 items to probe it")
        split = StratifiedKFold(folds, shuffle=True, random_state=seed)
        linear = LogisticRegression(max_iter=2000, C=1.0)
        mlp = MLPClassifier(hidden_layer_sizes=(64,), max_iter=200, early_stopping=True, random_state=seed)
        chance, scoring = float(counts.max() / counts.sum()), "accuracy"
    else:
        split = KFold(FOLDS, shuffle=True, random_state=seed)
        linear = Ridge(alpha=1.0)
        mlp = MLPRegressor(hidden_layer_sizes=(64,), max_iter=200, early_stopping=True, random_state=seed)
        chance, scoring = 0.0, "r2"
    probes = (("probe_linear", linear),) + ((("probe_nonlinear", mlp),) if nonlinear else ())
    scores = {"probe_nonlinear": None}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings of a probe say nothing the score does not
        for name, model in probes:
            pipe = make_pipeline(StandardScaler(), model)
            scores[name] = float(np.mean(cross_val_score(pipe, X, target, cv=split, scoring=scoring)))
    return {"kind": kind, "probe_linear": scores["probe_linear"], "probe_nonlinear": scores["probe_nonlinear"],
            "probe_chance": chance, "n": int(len(X))}


def _subsample(target: np.ndarray, kind: str, seed: int) -> np.ndarray:
    """At most PROBE_MAX_ROWS row numbers, each class keeping its share (every row when there are fewer)."""
    n = len(target)
    if n <= PROBE_MAX_ROWS:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    if kind == "continuous":
        return np.sort(rng.choice(n, PROBE_MAX_ROWS, replace=False))
    picked = []
    for value in np.unique(target):
        members = np.flatnonzero(target == value)
        take = max(2, int(round(len(members) * PROBE_MAX_ROWS / n)))
        picked.append(rng.choice(members, min(take, len(members)), replace=False))
    return np.sort(np.concatenate(picked))
