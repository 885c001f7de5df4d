"""Input validation shared by every model that takes a feature matrix (as scikit-learn's ``check_array``).

One owner for what a usable feature matrix is, so detectors, rankers, the kNN
index and the map refuse the same inputs with the same message.
"""

from __future__ import annotations

import numpy as np

_CHECK_ROWS = 65_536  # rows per block of the finite check: no full-size boolean copy of 10^6 x 1280


def check_features(X, name: str = "X", dim: int | None = None) -> np.ndarray:
    """Return ``X`` as a C-contiguous float32 (items x features) array (no copy when it already is one).

    Raises ``ValueError`` for anything no model can use meaningfully: not 2-D,
    no rows or no columns, a column count other than ``dim``, NaN or inf values
    (the message names the first bad rows).
    """
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n_items, n_features), got shape {X.shape}")
    if X.shape[0] == 0:
        raise ValueError(f"{name} is empty (0 rows)")
    if X.shape[1] == 0:
        raise ValueError(f"{name} has no features (0 columns)")
    if dim is not None and X.shape[1] != dim:
        raise ValueError(f"{name} has {X.shape[1]} features but {dim} were expected")
    X = np.ascontiguousarray(X, dtype=np.float32)
    bad = np.concatenate([~np.isfinite(X[i:i + _CHECK_ROWS]).all(axis=1) for i in range(0, len(X), _CHECK_ROWS)])
    if bad.any():
        rows = np.flatnonzero(bad)
        raise ValueError(f"{name} has {rows.size} row(s) containing NaN or inf (first: {rows[:5].tolist()}); "
                         "drop or re-extract those items first")
    return X
