"""Non-linear nuisance removal: a small projection head trained so that an adversary cannot read the nuisance.

LEACE (:mod:`.erasure`) leaves no *linear* trace of a nuisance, but a nuisance that
lives in how two directions combine (the radius of a blob, an XOR of two signs, the
texture statistics that tell mono from poly wafers) survives it: a small MLP probe
still reads it.  Red PANDA's answer (Cohen, Kahana, Hoshen, ICLR 2023) is a learned
representation with no information on the nuisance.  Here it is a head ``d -> hidden
-> m`` trained on the CPU with two goals at once:

* keep the features: a decoder must rebuild the (PCA-reduced, standardised) input from
  the head's output, so every direction of variation that is not the nuisance stays;
* forget the nuisance: an adversary MLP is trained, in alternating updates, to predict
  the nuisance from the output, and the head is trained to make it fail (its predictions
  pushed to the class shares: domain confusion, steadier than reversing its gradient).
  An adversary alone is easy to fool without forgetting (the head hides the nuisance
  where the adversary of the moment does not look; a fresh probe finds it), so the head
  also pays the squared MMD between each nuisance class's outputs and the rest's
  (Gaussian kernel): when the classes' distributions coincide, no probe can tell them
  apart.  A continuous nuisance is cut into quantile bins first.

Training is seeded and single-threaded (the same floats on every machine) and capped
at :data:`MAX_STEPS` updates, so 10^5 items cost what 10^4 do.  The fitted head is plain
numpy arrays (:class:`HeadTransform`): applying it needs no torch, only fitting does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from oddscope.core.models.validation import check_features
from oddscope.core.progress import as_progress

INPUT_DIMS = 256  # PCA of the input first: a 1280-d first layer would cost 5x and learn nothing more
HIDDEN = 256
OUTPUT_DIMS = 128
MAX_STEPS = 800
BATCH = 256
CONTINUOUS_BINS = 8  # a continuous nuisance is predicted (and forgotten) as this many quantile bins
CONFUSION_WEIGHT = 1.0  # the adversary's confusion term (nats)
MMD_WEIGHT = 100.0  # the class-vs-rest MMD term: measured on synthetic data and ELPV (README, Guidance)
_BLOCK_ROWS = 65_536


@dataclass(frozen=True)
class HeadTransform:
    """``x' = W2 relu(W1 u + b1) + b2``, ``u = (x - mean) @ basis / scale``: the trained head, in numpy."""

    mean: np.ndarray
    basis: np.ndarray
    scale: np.ndarray
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray

    @property
    def rank(self) -> int:
        """The output's dimensions."""
        return int(self.w2.shape[0])

    def apply(self, X) -> np.ndarray:
        """The head's output (float32, ``rank`` columns), in blocks of rows."""
        X = check_features(X, dim=len(self.mean))
        out = np.empty((len(X), self.rank), dtype=np.float32)
        for start in range(0, len(X), _BLOCK_ROWS):
            inputs = ((X[start:start + _BLOCK_ROWS] - self.mean) @ self.basis) / self.scale
            hidden = np.maximum(inputs @ self.w1.T + self.b1, 0)
            out[start:start + _BLOCK_ROWS] = hidden @ self.w2.T + self.b2
        return out

    def to_arrays(self) -> dict:
        """Plain arrays for ``np.savez`` (no pickle)."""
        return {name: getattr(self, name) for name in ("mean", "basis", "scale", "w1", "b1", "w2", "b2")}

    @classmethod
    def from_arrays(cls, arrays) -> "HeadTransform":
        return cls(**{name: np.asarray(arrays[name], np.float32)
                      for name in ("mean", "basis", "scale", "w1", "b1", "w2", "b2")})


def nuisance_classes(Z, kind: str) -> np.ndarray:
    """Class numbers the adversary predicts: the one-hot column, or a continuous value's quantile bin."""
    Z = np.asarray(Z, dtype=np.float64)
    if kind == "categorical":
        return Z.argmax(axis=1)
    edges = np.unique(np.quantile(Z[:, 0], np.linspace(0, 1, CONTINUOUS_BINS + 1)[1:-1]))
    return np.searchsorted(edges, Z[:, 0], side="right")


def _mlp(sizes: list[int]):
    import torch

    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers += [torch.nn.Linear(n_in, n_out), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1])


def _mmd(out, y, n_classes):
    """Sum over the classes in the batch of the squared MMD (Gaussian kernel, median bandwidth) between a class's
    outputs and the rest's."""
    import torch

    d2 = torch.cdist(out, out).pow(2)
    kernel = torch.exp(-d2 / d2.detach().median().clamp_min(1e-6))
    total = out.new_zeros(())
    for c in range(n_classes):
        inside = y == c
        if inside.sum() < 2 or (~inside).sum() < 2:
            continue
        weights = inside.float() / inside.sum() - (~inside).float() / (~inside).sum()
        total = total + weights @ kernel @ weights
    return total


def fit_head(X, Z, kind: str, output_dims: int = OUTPUT_DIMS, hidden: int = HIDDEN, max_steps: int = MAX_STEPS,
             confusion: float = CONFUSION_WEIGHT, mmd: float = MMD_WEIGHT, seed: int = 0,
             progress=None) -> HeadTransform:
    """Train the head on ``X`` (n x d) against the nuisance ``Z`` (``concept_matrix``'s output and ``kind``).

    ``progress`` gets ``("nuisance head", step, max_steps)`` and may cancel between steps.
    """
    from oddscope.core.models.detectors.autoencoder import single_torch_thread

    with single_torch_thread():
        return _train(X, nuisance_classes(Z, kind), output_dims, hidden, max_steps, confusion, mmd, seed,
                      as_progress(progress))


def _train(X, classes, output_dims, hidden, max_steps, confusion, mmd, seed, progress) -> HeadTransform:
    import torch
    import torch.nn.functional as F

    from oddscope.core.models.reduction import FeatureReducer

    X = check_features(X)
    if len(X) < 2:
        raise ValueError("fitting a transform needs at least 2 items")
    reducer = FeatureReducer(INPUT_DIMS, normalize=False, seed=seed, svd_solver="randomized",
                             max_fit_rows=None).fit(X)
    pca = reducer.pca_
    mean = pca.mean_.astype(np.float32) if pca is not None else X.mean(axis=0)
    basis = pca.components_.T.astype(np.float32) if pca is not None else np.eye(X.shape[1], dtype=np.float32)
    reduced = (X - mean) @ basis
    # one scale for every component: kNN distances weigh the components by their variance, and so must the MSE
    scale = np.array([np.sqrt(np.mean(reduced.var(axis=0))) + 1e-6])
    data = torch.from_numpy((reduced / scale).astype(np.float32))
    target = torch.from_numpy(classes.astype(np.int64))
    n_classes = int(classes.max()) + 1
    prior = torch.bincount(target, minlength=n_classes).float() / len(target)
    width = data.shape[1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head, decoder = _mlp([width, hidden, output_dims]), _mlp([output_dims, hidden, width])
        adversary = _mlp([output_dims, 128, 128, n_classes])
    generator = torch.Generator().manual_seed(seed)
    main = torch.optim.Adam([*head.parameters(), *decoder.parameters()], lr=1e-3)
    adv_optimiser = torch.optim.Adam(adversary.parameters(), lr=1e-3)
    batch = min(BATCH, len(data))
    order, position = torch.randperm(len(data), generator=generator), 0
    for step in range(max_steps):
        if position + batch > len(data):
            order, position = torch.randperm(len(data), generator=generator), 0
        rows = order[position:position + batch]
        position += batch
        x, y = data[rows], target[rows]
        # the adversary learns to read the nuisance from the current output...
        adv_loss = F.cross_entropy(adversary(head(x).detach()), y)
        adv_optimiser.zero_grad()
        adv_loss.backward()
        adv_optimiser.step()
        # ...and the head learns to keep the input while the adversary sees only the class shares
        out = head(x)
        log_p = F.log_softmax(adversary(out), dim=1)
        loss = (F.mse_loss(decoder(out), x) - confusion * (prior * log_p).sum(dim=1).mean()
                + mmd * _mmd(out, y, n_classes))
        main.zero_grad()
        loss.backward()
        main.step()
        if step % 50 == 0 or step == max_steps - 1:
            progress.update("nuisance head", step + 1, max_steps)
    first, last = head[0], head[2]
    return HeadTransform(mean.astype(np.float32), basis, scale.astype(np.float32),
                         *(p.detach().numpy().astype(np.float32) for p in (first.weight, first.bias,
                                                                         last.weight, last.bias)))
