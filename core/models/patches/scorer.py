"""Per-patch distances -> calibrated per-pixel maps, in reference or zero-shot mode, with corrections.

* **reference**: the bank is a coreset of the known-normal images' patches; a
  fifth of those images (up to 50) is held out of the bank to calibrate.
* **zero-shot** (in the spirit of MuSc, ICLR 2024): no normal set.  Each image
  is compared with a pool of the collection's other images; a patch's score is
  the mean distance to its nearest patch in the closest ``pool_fraction`` of
  the pool images.  An anomaly seen in a few pool images cannot hide another
  (it would need to appear in that fraction of them), while normal patches find
  matches in most images.  The pool's own leave-one-out maps calibrate.

Corrections: patches the user marked normal form a second bank; a patch's
distance is the smaller of the mode's and its distance to a corrected patch, so
a false alarm the user cleared disappears from every image that shares it.
Each correction's size is kept, so the newest can be undone.
The calibration is kept: the same value still means the same rate on normal
pixels that were never corrected.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from oddscope.core.models.patches.bank import greedy_coreset, nearest_distances, nearest_per_image
from oddscope.core.models.patches.calibration import Calibration

MODES = ("reference", "zero-shot")
_MAX_HOLDOUT = 50


@dataclass
class MapSettings:
    map_size: int = 64  # side of the cached map, in cells over the whole image
    sigma: float = 4.0  # Gaussian smoothing, in encoder-input pixels (PatchCore's 4 at 224 px)
    coreset_ratio: float = 0.1  # reference: share of the normal patches kept in the bank
    max_bank: int = 40_000  # reference: bank size cap (query time grows with it)
    pool_size: int = 32  # zero-shot: collection images every image is compared with
    pool_fraction: float = 0.3  # zero-shot: mean over the closest this share of the pool
    seed: int = 0


class PatchScorer:
    """Fit on patches ``(n, h, w, D)`` from :class:`~.extractor.PatchExtractor`; :meth:`maps` scores more."""

    def __init__(self, mode: str, input_size: int, settings: MapSettings | None = None):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode, self.input_size = mode, int(input_size)
        self.settings = settings or MapSettings()
        self.bank: np.ndarray | None = None  # reference mode
        self.pool: np.ndarray | None = None  # zero-shot mode: (M, h*w, D) float16
        self.pool_ids = np.empty(0, np.int64)
        self.corrections = np.empty((0, 0), np.float32)
        self.correction_sizes = np.empty(0, np.int64)  # patches per correction, oldest first (to undo one)
        self.calibration: Calibration | None = None

    # ----------------------------------------------------------------- fitting
    def fit_reference(self, patches: np.ndarray, progress=None) -> "PatchScorer":
        """Bank from most reference images' patches, calibration from the held-out rest."""
        n = len(patches)
        if n < 2:
            raise ValueError(f"reference mode needs at least 2 normal images, got {n}")
        rng = np.random.default_rng(self.settings.seed)
        order = rng.permutation(n)
        n_hold = min(_MAX_HOLDOUT, max(1, round(0.2 * n)))
        held, kept = order[:n_hold], order[n_hold:]
        flat = patches[kept].reshape(-1, patches.shape[-1])
        n_keep = min(self.settings.max_bank, max(1, int(np.ceil(self.settings.coreset_ratio * len(flat)))))
        self.bank = flat[greedy_coreset(flat, n_keep, self.settings.seed, progress)].astype(np.float32)
        self.corrections = np.empty((0, flat.shape[1]), np.float32)
        self.correction_sizes = np.empty(0, np.int64)
        self.calibration = Calibration.fit(self._smooth(self.raw(patches[held])))
        return self

    def fit_zero_shot(self, pool_patches: np.ndarray, pool_ids) -> "PatchScorer":
        """Pool of collection images (ids ``pool_ids``); calibration from their leave-one-out maps."""
        if len(pool_patches) < 3:
            raise ValueError(f"zero-shot mode needs at least 3 images, got {len(pool_patches)}")
        m, h, w, d = pool_patches.shape
        self.pool = pool_patches.reshape(m, h * w, d).astype(np.float16)
        self.pool_ids = np.asarray(pool_ids, dtype=np.int64)
        self.corrections = np.empty((0, d), np.float32)
        self.correction_sizes = np.empty(0, np.int64)
        self.calibration = Calibration.fit(self._smooth(self.raw(pool_patches, self.pool_ids)))
        return self

    def add_normal(self, patches: np.ndarray) -> None:
        """Patches ``(k, D)`` the user marked normal: their neighbourhood scores as normal from now on."""
        patches = np.asarray(patches, np.float32).reshape(-1, self.corrections.shape[1])
        self.corrections = np.concatenate([self.corrections, patches])
        self.correction_sizes = np.append(self.correction_sizes, len(patches))

    def remove_last_correction(self) -> int:
        """Forget the newest :meth:`add_normal` (undo); returns the number of patches removed (0: none left)."""
        if not len(self.correction_sizes):
            return 0
        size = int(self.correction_sizes[-1])
        self.corrections = self.corrections[: len(self.corrections) - size]
        self.correction_sizes = self.correction_sizes[:-1]
        return size

    # ----------------------------------------------------------------- scoring
    def raw(self, patches: np.ndarray, ids=None) -> np.ndarray:
        """``(B, h, w, D)`` -> ``(B, h, w)`` nearest-normal distances (``ids``: the images' own ids, which
        zero-shot mode never compares with themselves)."""
        b, h, w, d = patches.shape
        out = np.empty((b, h * w), np.float32)
        ids = np.full(b, -1) if ids is None else np.asarray(ids)
        for i in range(b):
            q = patches[i].reshape(-1, d)
            if self.mode == "reference":
                out[i] = nearest_distances(q, self.bank)
            else:
                out[i] = self._zero_shot(q, int(ids[i]))
            if len(self.corrections):
                out[i] = np.minimum(out[i], nearest_distances(q, self.corrections))
        return out.reshape(b, h, w)

    def maps(self, patches: np.ndarray, ids=None) -> np.ndarray:
        """``(B, h, w, D)`` -> ``(B, S, S)`` calibrated maps over the whole image (S = ``map_size``)."""
        return self.calibration(self._smooth(self.raw(patches, ids)))

    @staticmethod
    def image_scores(maps: np.ndarray) -> np.ndarray:
        """The image score of each map: its highest calibrated value (a single bad region is enough)."""
        return np.asarray(maps, np.float32).reshape(len(maps), -1).max(axis=1)

    def _zero_shot(self, q: np.ndarray, own_id: int) -> np.ndarray:
        distances = nearest_per_image(q, self.pool)
        distances = distances[:, self.pool_ids != own_id]
        closest = max(1, int(np.ceil(self.settings.pool_fraction * distances.shape[1])))
        return np.sort(distances, axis=1)[:, :closest].mean(axis=1)

    def _smooth(self, raw: np.ndarray) -> np.ndarray:
        """Patch grid -> ``map_size`` cells (bilinear), blurred as PatchCore blurs at full resolution."""
        import torch
        import torch.nn.functional as F

        size = self.settings.map_size
        with torch.inference_mode():
            up = F.interpolate(torch.from_numpy(np.ascontiguousarray(raw, np.float32))[:, None], size=(size, size),
                               mode="bilinear", align_corners=False)[:, 0].numpy()
        sigma = self.settings.sigma * size / self.input_size
        return gaussian_filter(up, sigma=(0, sigma, sigma), mode="nearest")

    # ------------------------------------------------------------ persistence
    def save(self, path: Path) -> None:
        meta = {"mode": self.mode, "input_size": self.input_size, "settings": asdict(self.settings),
                "calibration": self.calibration.to_dict()}
        arrays = {"corrections": self.corrections, "correction_sizes": self.correction_sizes,
                  "pool_ids": self.pool_ids}
        arrays["bank" if self.mode == "reference" else "pool"] = self.bank if self.mode == "reference" else self.pool
        tmp = Path(path).with_suffix(".part.npz")
        np.savez(tmp, meta=np.array(json.dumps(meta)), **arrays)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "PatchScorer":
        with np.load(path) as data:
            meta = json.loads(str(data["meta"]))
            scorer = cls(meta["mode"], meta["input_size"], MapSettings(**meta["settings"]))
            scorer.calibration = Calibration.from_dict(meta["calibration"])
            scorer.corrections = data["corrections"]
            scorer.correction_sizes = data["correction_sizes"]
            scorer.pool_ids = data["pool_ids"]
            if scorer.mode == "reference":
                scorer.bank = data["bank"]
            else:
                scorer.pool = data["pool"]
        return scorer
