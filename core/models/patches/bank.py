"""The memory of normal patches: a greedy k-center coreset of them and the nearest-patch distance to it.

Why a coreset: a few hundred normal images hold a few hundred thousand
patches, most of them near-duplicates.  Greedy k-center selection keeps the
patches that cover the rest (every dropped patch is close to a kept one), so
nearest-patch distances barely change while the bank and every query shrink
tenfold.  Selection runs on a random projection of the features (distances
are roughly preserved, each step is cheaper) and in independent chunks whose
coresets are united ("composable coresets"): the cost of greedy selection grows
with bank size x coreset size, so chunks of about 20,000 patches keep it
linear in the number of patches instead of quadratic.
"""

from __future__ import annotations

import numpy as np

PROJECTION_DIM = 64
CHUNK_PATCHES = 20_000
_QUERY_BLOCK_FLOATS = 16_000_000  # distance-matrix entries per block of nearest-patch search (64 MB)


def greedy_coreset(patches: np.ndarray, n_keep: int, seed: int = 0, progress=None) -> np.ndarray:
    """Indices of ``n_keep`` patches chosen by greedy k-center selection (chunked, on a random projection).

    Plain numpy with in-place updates: each step is one matrix-vector product,
    where torch's per-call overhead made it 1.5-3x slower (measured, 20,000 x 64).
    """
    patches = np.asarray(patches, dtype=np.float32)
    n = len(patches)
    if n_keep >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    dim = patches.shape[1]
    projection = rng.normal(size=(dim, PROJECTION_DIM)).astype(np.float32) if dim > PROJECTION_DIM else None
    chunks = np.array_split(rng.permutation(n), max(1, int(np.ceil(n / CHUNK_PATCHES))))
    kept = []
    for c, chunk in enumerate(chunks):
        x = patches[chunk] if projection is None else patches[chunk] @ projection
        quota = max(1, round(n_keep * len(chunk) / n))
        squares = np.einsum("ij,ij->i", x, x)
        chosen = np.zeros(quota, np.int64)
        nearest = np.full(len(x), np.inf, np.float32)
        for i in range(quota):  # squared distance to the newest centre: |x|^2 - 2 x.c + |c|^2, in place
            distance = x @ x[chosen[i]]
            distance *= -2.0
            distance += squares
            distance += squares[chosen[i]]
            np.minimum(nearest, distance, out=nearest)
            if i + 1 < quota:
                chosen[i + 1] = int(nearest.argmax())
        kept.append(chunk[chosen])
        if progress is not None:
            progress.update("memory bank", c + 1, len(chunks))
    return np.sort(np.concatenate(kept))


def nearest_distances(queries: np.ndarray, bank: np.ndarray) -> np.ndarray:
    """Euclidean distance of each query row to its nearest bank row, exactly, in memory-bounded blocks."""
    import torch

    q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))
    b = torch.from_numpy(np.ascontiguousarray(bank, dtype=np.float32))
    q_sq = (q * q).sum(1, keepdim=True)
    b_sq = (b * b).sum(1)
    best = torch.full((len(q),), float("inf"))
    step = max(1, _QUERY_BLOCK_FLOATS // max(1, len(q)))
    for start in range(0, len(b), step):
        block = b[start:start + step]
        d2 = torch.addmm(q_sq + b_sq[start:start + step], q, block.T, alpha=-2.0)
        best = torch.minimum(best, d2.min(dim=1).values)
    return best.clamp_min_(0).sqrt_().numpy()


def nearest_per_image(queries: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """``(P, D)`` queries against a pool of images' patches ``(M, Q, D)`` -> ``(P, M)``: the distance of
    each query patch to the nearest patch of each pool image."""
    import torch

    m, n_patches, dim = pool.shape
    q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))
    q_sq = (q * q).sum(1, keepdim=True)
    out = torch.empty((len(q), m))
    per_block = max(1, _QUERY_BLOCK_FLOATS // max(1, len(q) * n_patches))
    for start in range(0, m, per_block):
        block = torch.from_numpy(np.ascontiguousarray(pool[start:start + per_block], dtype=np.float32))
        flat = block.reshape(-1, dim)
        d2 = torch.addmm(q_sq + (flat * flat).sum(1), q, flat.T, alpha=-2.0)
        out[:, start:start + len(block)] = d2.view(len(q), len(block), n_patches).min(dim=2).values
    return out.clamp_min_(0).sqrt_().numpy()
