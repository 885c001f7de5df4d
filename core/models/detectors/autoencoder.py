"""Autoencoder detector (``autoencoder``): torch is imported only when it trains or scores."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from oddscope.core.models.detectors.base import MAX_DIMS, Detector, fit_reducer


@contextmanager
def single_torch_thread():
    """Run a tiny model on one thread: for a ~100k-parameter MLP, thread
    synchronisation costs far more than it saves (40x slower on a busy 2-core
    machine), and one thread gives the same floats on every machine."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _autoencoder(dim, hidden, bottleneck):
    import torch

    return torch.nn.Sequential(
        torch.nn.Linear(dim, hidden), torch.nn.ReLU(),
        torch.nn.Linear(hidden, bottleneck), torch.nn.ReLU(),
        torch.nn.Linear(bottleneck, hidden), torch.nn.ReLU(),
        torch.nn.Linear(hidden, dim),
    )


class AutoencoderDetector(Detector):
    """Reconstruction error of a small MLP autoencoder trained on the memory.

    Inputs are PCA-reduced to ``max_dims`` and standardised per component, so
    every direction weighs alike in the MSE.  Normal images lie on the manifold
    the bottleneck learned; anomalies reconstruct badly.  Training is capped at
    ``max_steps`` minibatch updates so a 10^6-item collection costs about what a
    50k one does; the seed fixes initialisation and batch order.  torch is
    imported when the detector trains or scores, so that importing this module
    costs nothing.
    """

    name = "autoencoder"

    def __init__(self, hidden=128, bottleneck=32, epochs=30, batch_size=256, lr=1e-3,
                 max_steps=3000, max_dims=MAX_DIMS, seed=0):
        self.hidden, self.bottleneck, self.epochs = int(hidden), int(bottleneck), int(epochs)
        self.batch_size, self.lr, self.max_steps = int(batch_size), float(lr), int(max_steps)
        self.max_dims, self.seed = int(max_dims), int(seed)

    def params(self):
        return {"hidden": self.hidden, "bottleneck": self.bottleneck, "epochs": self.epochs,
                "batch_size": self.batch_size, "lr": self.lr, "max_steps": self.max_steps,
                "max_dims": self.max_dims, "seed": self.seed}

    def _standardise(self, X):
        import torch

        Z = self.reducer_.transform(X)
        return torch.from_numpy(((Z - self.mean_) / self.std_).astype(np.float32))

    def _fit(self, X):
        with single_torch_thread():
            self._train(X)

    def _train(self, X):
        import torch

        self.reducer_ = fit_reducer(X, self.max_dims, self.seed)
        Z = self.reducer_.transform(X)
        self.mean_, self.std_ = Z.mean(axis=0), Z.std(axis=0) + 1e-6
        data = self._standardise(X)
        generator = torch.Generator().manual_seed(self.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.model_ = _autoencoder(data.shape[1], self.hidden, self.bottleneck)
        optimiser = torch.optim.Adam(self.model_.parameters(), lr=self.lr)
        steps = 0
        for _ in range(self.epochs):
            for batch in torch.randperm(len(data), generator=generator).split(self.batch_size):
                loss = torch.nn.functional.mse_loss(self.model_(data[batch]), data[batch])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                steps += 1
                if steps >= self.max_steps:
                    break
            if steps >= self.max_steps:
                break
        self.model_.eval()

    def _score(self, X, exclude_self):
        import torch

        data = self._standardise(X)
        with torch.no_grad(), single_torch_thread():
            errors = [((self.model_(b) - b) ** 2).mean(dim=1) for b in data.split(65536)]
        return torch.cat(errors).numpy()
