"""Guided feature spaces as stored in a project: their specs, their fitted transforms, their features.

A space is the encoder's features passed through a transform fitted by
:mod:`oddscope.core.workflows.guidance` (LEACE erasure of a nuisance, the non-linear
head, the relevant-only projection, or attributes in words).  Only the spec (a project setting) and the small
transform (``layout.guidance_model``) are stored: a space's features are the raw
feature file transformed on reading, so a space costs no second feature matrix.
Beside the transform, a space of wide features keeps a :class:`DistanceBasis` (its top ``SPACE_DIMS``
principal directions plus the mean): a space's features are those coordinates, which keep cosine and
Euclidean distances (kNN scores at Spearman > 0.99) while every neighbour search runs on a fifth of
1280 dimensions.  Everything downstream (neighbours, active learning, the app) reads a space's
features here, and names its arrays with ``layout.space_name``.
"""

from __future__ import annotations

import re

import numpy as np

from oddscope.core.models.guidance.erasure import SubspaceTransform
from oddscope.core.models.guidance.head import HeadTransform
from oddscope.core.models.reduction import DistanceBasis, fit_distance_basis
from oddscope.core.project.features import load_features
from oddscope.core.project.layout import ENCODER, GUIDANCE, RAW_SPACE, space_name
from oddscope.core.project.store import Project

SPACE_DIMS = 256  # principal directions a space's features keep (wider features only), see DistanceBasis
_BASIS = "basis_"  # prefix of the basis's arrays in the space's model file
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def spaces(project: Project) -> dict[str, dict]:
    """The project's guided spaces: ``{name: spec}`` in the order they were added."""
    return dict(GUIDANCE.read(project))


def space_spec(project: Project, space: str) -> dict:
    """The spec of ``space``; KeyError naming the known spaces otherwise."""
    known = spaces(project)
    if space not in known:
        raise KeyError(f"no feature space {space!r} in {project.root}; known: {', '.join(known) or 'none'} "
                       "(add one with `oddscope guidance add`)")
    return known[space]


def check_space_name(name: str) -> str:
    """A usable space name (it becomes part of array and file names), or ValueError saying why not."""
    if name == RAW_SPACE or not _NAME.match(name or ""):
        raise ValueError(f"space name {name!r}: use letters, digits, '_', '-' or '.' (up to 64, not "
                         f"{RAW_SPACE!r})")
    return name


def load_transform(project: Project, space: str) -> SubspaceTransform | HeadTransform:
    """The fitted transform of ``space``: the non-linear head's, or the linear one every other method makes."""
    kind = HeadTransform if space_spec(project, space)["method"] == "nonlinear" else SubspaceTransform
    with np.load(project.layout.guidance_model(space)) as arrays:
        return kind.from_arrays(arrays)


def load_basis(project: Project, space: str) -> DistanceBasis | None:
    """The space's distance basis; None for narrow features (and spaces saved before there was one)."""
    space_spec(project, space)
    with np.load(project.layout.guidance_model(space)) as arrays:
        return DistanceBasis.from_arrays(arrays, _BASIS)


def fit_basis(guided: np.ndarray) -> DistanceBasis | None:
    """The distance basis of a space whose (transformed) features are ``guided``."""
    return fit_distance_basis(guided, SPACE_DIMS)


def save_transform(project: Project, space: str, transform: SubspaceTransform | HeadTransform,
                   basis: DistanceBasis | None = None) -> None:
    path = project.layout.guidance_model(space)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{space}.tmp.npz")
    np.savez(tmp, **transform.to_arrays(), **(basis.to_arrays(_BASIS) if basis is not None else {}))
    tmp.replace(path)


def in_basis(basis: DistanceBasis | None, guided: np.ndarray) -> np.ndarray:
    """A space's features from its transformed features: their basis coordinates (unchanged without one)."""
    return guided if basis is None else basis.apply(guided)


def feature_key(project: Project, space: str | None = None) -> str:
    """The key of the features of ``space`` (None: the encoder's own): names their indexes and runs."""
    return space_name(ENCODER.read(project)["key"], space)


def space_features(project: Project, ids=None, space: str | None = None) -> np.ndarray:
    """Features of ``ids`` in ``space`` (None: the raw features), float32 in memory: a space's are the
    coordinates of the transformed features in its distance basis."""
    X = load_features(project, ENCODER.read(project)["key"], ids)
    if space is None:
        return X
    return in_basis(load_basis(project, space), load_transform(project, space).apply(X))
