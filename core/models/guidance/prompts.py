"""Attributes in words: a CLIP text tower turns "background colour" into directions of the image features.

CLIP puts images and texts in one space, so the embedding of a phrase points along
what the images' features hold of it.  One phrase embedded alone is noisy (the words
around it move it), so each phrase is embedded in a few prompt templates and the
normalised embeddings are averaged (CLIP's prompt ensembling).  Nuisance directions
are projected out of the features; relevant ones are kept, made orthogonal to the
nuisance ones first so that keeping them cannot bring a nuisance back:

* relevant only (``weight=None``): ``x' = R R^T x``, only the span of the relevant phrases;
* otherwise ``x' = x - N N^T x + (weight - 1) R R^T x`` (no relevant phrases: ``R`` empty).

Both have the form of :class:`~.erasure.SubspaceTransform` (mean 0: CLIP features are
compared by direction, so the projections go through the origin), which applies and
stores them like the LEACE transforms.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from oddscope.core.models.guidance.erasure import SubspaceTransform

TEMPLATES = ("a photo with {}.", "an image showing {}.", "a picture of {}.", "a close-up photo of {}.",
             "{}")


def phrase_directions(encode_text: Callable[[list[str]], np.ndarray], phrases: Sequence[str],
                      templates: Sequence[str] = TEMPLATES) -> np.ndarray:
    """``(len(phrases), dim)`` unit vectors: each phrase's mean normalised embedding over ``templates``."""
    if not phrases:
        return np.zeros((0, 0), dtype=np.float32)
    texts = [template.format(phrase) for phrase in phrases for template in templates]
    embedded = np.asarray(encode_text(texts), dtype=np.float64).reshape(len(phrases), len(templates), -1)
    embedded /= np.linalg.norm(embedded, axis=2, keepdims=True)
    mean = embedded.mean(axis=1)
    return (mean / np.linalg.norm(mean, axis=1, keepdims=True)).astype(np.float32)


def _basis(directions: np.ndarray, dim: int, against: np.ndarray | None = None) -> np.ndarray:
    """An orthonormal basis (dim x r) of the span of ``directions`` (rows), first made orthogonal to ``against``."""
    if len(directions) == 0:
        return np.zeros((dim, 0), dtype=np.float64)
    vectors = np.asarray(directions, dtype=np.float64).T
    if against is not None and against.shape[1]:
        vectors = vectors - against @ (against.T @ vectors)
    u, s, _ = np.linalg.svd(vectors, full_matrices=False)
    return u[:, s > 1e-6 * max(float(s.max()), 1e-12)]


def fit_prompts(nuisance: np.ndarray, relevant: np.ndarray, dim: int, weight: float | None = None) -> SubspaceTransform:
    """The transform that removes the ``nuisance`` directions and keeps (or weights) the ``relevant`` ones.

    Both are ``(k, dim)`` rows from :func:`phrase_directions` (either may be empty, not both).
    """
    N = _basis(nuisance, dim)
    R = _basis(relevant, dim, against=N)
    if N.shape[1] == 0 and R.shape[1] == 0:
        raise ValueError("attributes in words need at least one nuisance or relevant phrase")
    mean = np.zeros(dim, dtype=np.float32)
    if weight is None and R.shape[1]:
        return SubspaceTransform(mean, R.astype(np.float32), R.astype(np.float32), keep=1.0, rest=0.0)
    # x' = x - Q x with Q = N N^T - (w - 1) R R^T, stored as left @ right.T
    w = 1.0 if weight is None else float(weight)
    left = np.concatenate([N, -(w - 1.0) * R], axis=1)
    right = np.concatenate([N, R], axis=1)
    return SubspaceTransform(mean, left.astype(np.float32), right.astype(np.float32), keep=0.0, rest=1.0)
