"""Per-patch features: two intermediate stages of an encoder, locally averaged, on one grid.

Why two stages: the stride-8 stage sees small defects (a scratch a few pixels
wide), the stride-16 stage sees context (a missing part of an object).
Averaging each over its 3x3 neighbourhood makes a patch's feature tolerant of
a shift by one cell, as PatchCore does, so a normal texture that is slightly
misaligned is not an anomaly.
"""

from __future__ import annotations

import numpy as np

from oddscope.core.models.registry import EncoderError

FINE_STRIDE, COARSE_STRIDE = 8, 16  # PatchCore's "layer 2 + layer 3" of a ResNet


def pick_stages(stages: list[dict]) -> list[int]:
    """Indices of the stages to use: the last at stride 8 and the last at stride 16 (a CNN), or, when
    every stage has one stride (a ViT), the blocks at one half and three quarters of the depth."""
    if not stages:
        return []
    reductions = [int(s["reduction"]) for s in stages]
    if len(set(reductions)) == 1:
        depth = len(stages)
        return sorted({max(0, depth // 2 - 1), max(0, 3 * depth // 4 - 1)})
    chosen = [max(i for i, r in enumerate(reductions) if r == stride)
              for stride in (FINE_STRIDE, COARSE_STRIDE) if stride in reductions]
    if len(chosen) < 2:  # an unusual CNN: the last stage of each of its two finest strides
        finest = sorted(set(reductions))[:2]
        chosen = [max(i for i, r in enumerate(reductions) if r == stride) for stride in finest]
    return chosen


class PatchExtractor:
    """``(B, S, S, 3)`` uint8 batches (the encoder's preprocessing) -> ``(B, h, w, D)`` float32 patches."""

    def __init__(self, encoder):
        self.encoder = encoder
        self.indices = pick_stages(encoder.stages)
        if not self.indices:
            raise EncoderError(f"encoder {encoder.spec!r} cannot return intermediate features, which per-pixel "
                               "anomaly maps need; use a timm CNN or ViT, or a CLIP ViT")
        stages = encoder.stages
        self.dim = sum(int(stages[i]["num_chs"]) for i in self.indices)
        self.stride = min(int(stages[i]["reduction"]) for i in self.indices)
        self.grid = encoder.input_size // self.stride

    def describe(self) -> dict:
        stages = self.encoder.stages
        return {"encoder": self.encoder.spec, "stages": [stages[i].get("module", str(i)) for i in self.indices],
                "dim": self.dim, "grid": self.grid, "aggregation": "3x3 mean"}

    def __call__(self, batch) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        maps = self.encoder.stage_features(batch, self.indices)
        size = max(m.shape[-1] for m in maps)
        with torch.inference_mode():
            pooled = [F.avg_pool2d(m, 3, stride=1, padding=1, count_include_pad=False) for m in maps]
            aligned = [p if p.shape[-1] == size else F.interpolate(p, size=(size, size), mode="bilinear",
                                                                   align_corners=False) for p in pooled]
            patches = torch.cat(aligned, dim=1).permute(0, 2, 3, 1)
        return np.ascontiguousarray(patches.cpu().numpy(), dtype=np.float32)
