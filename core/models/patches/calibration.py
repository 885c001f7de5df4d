"""Map values in one unit on every image: how rare a value is among normal pixels.

A map is only readable if the same colour means the same thing on every image;
normalising each map to its own minimum and maximum (a common default) makes
every normal image look anomalous.  Here a raw distance ``d`` becomes
``-log10(FPR(d))``, where ``FPR(d)`` is the fraction of *normal* pixels (held-out
reference images, or the bulk of the collection in zero-shot mode) at least as
anomalous as ``d``:

* 0 is "as normal as the normal set" (every normal pixel is at least this anomalous);
* 2 means one normal pixel in a hundred reaches it, 3 one in a thousand;
* beyond the rarest normal value seen, the exponential tail fitted to the top
  percent continues the scale, so values keep growing with the distance.

So a threshold in these units *is* a false-positive rate on normal pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_LEVELS = np.logspace(0, -6, 121)  # false-positive rates at which the normal quantiles are kept
_TAIL_FPR = 1e-2  # the tail fit starts at this rate
_SAMPLE = 2_000_000  # normal pixel values kept to estimate the quantiles


@dataclass
class Calibration:
    """Normal-pixel quantiles ``thresholds[i]`` at false-positive rates ``10**-units[i]``, and the tail slope."""

    thresholds: np.ndarray
    units: np.ndarray
    tail_slope: float  # units per raw-distance unit beyond the last threshold
    n_normal: int

    @classmethod
    def fit(cls, normal_values, seed: int = 0) -> "Calibration":
        values = np.asarray(normal_values, dtype=np.float64).reshape(-1)
        values = values[np.isfinite(values)]
        if len(values) < 10:
            raise ValueError(f"calibration needs normal pixel values, got {len(values)}")
        if len(values) > _SAMPLE:
            values = np.random.default_rng(seed).choice(values, _SAMPLE, replace=False)
        levels = _LEVELS[_LEVELS >= 1.0 / len(values)]
        thresholds = np.quantile(values, 1.0 - levels)
        thresholds = np.maximum.accumulate(thresholds)
        units = -np.log10(levels)
        tail = units >= -np.log10(_TAIL_FPR)
        spread = thresholds[tail][-1] - thresholds[tail][0]
        slope = (units[tail][-1] - units[tail][0]) / spread if spread > 0 else 1.0 / max(thresholds[-1], 1e-6)
        return cls(thresholds, units, float(slope), int(len(values)))

    def __call__(self, raw) -> np.ndarray:
        """Raw distances -> calibrated units (float32, >= 0, same shape)."""
        raw = np.asarray(raw, dtype=np.float64)
        thresholds, units = self.thresholds, self.units
        keep = np.r_[True, np.diff(thresholds) > 0]  # np.interp needs increasing x
        out = np.interp(raw, thresholds[keep], units[keep], left=0.0)
        beyond = raw > thresholds[-1]
        out[beyond] = units[-1] + (raw[beyond] - thresholds[-1]) * self.tail_slope
        return out.astype(np.float32)

    @staticmethod
    def false_positive_rate(value: float) -> float:
        """The fraction of normal pixels at or above a calibrated ``value``."""
        return float(10.0 ** -max(0.0, value))

    def to_dict(self) -> dict:
        return {"thresholds": self.thresholds.tolist(), "units": self.units.tolist(),
                "tail_slope": self.tail_slope, "n_normal": self.n_normal}

    @classmethod
    def from_dict(cls, data: dict) -> "Calibration":
        return cls(np.asarray(data["thresholds"], float), np.asarray(data["units"], float),
                   float(data["tail_slope"]), int(data["n_normal"]))
