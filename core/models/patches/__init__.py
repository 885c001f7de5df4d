"""Where an image is anomalous: per-pixel anomaly maps from per-patch features (SPADE / PatchCore / MuSc).

The method, in four small parts, one module each:

* :mod:`.extractor`: features of every patch from two intermediate stages of
  the project's encoder (strides 8 and 16 for a CNN, two middle blocks for a
  ViT), each averaged over its 3x3 neighbourhood, on the finer grid.
* :mod:`.bank`: the memory of normal patches, thinned by a greedy k-center
  coreset, and the nearest-patch distance of any patch to it.
* :mod:`.calibration`: map values in one unit on every image: how rare a value
  is among *normal* pixels (``-log10`` of the false-positive rate), never
  normalised per image.
* :mod:`.scorer`: the two modes, *reference* (the bank holds the known-normal
  images) and *zero-shot* (each image against a pool of the collection's other
  images, robust to the anomalies among them), upsampling and smoothing, the
  user's "this region is normal" corrections, and the image score (the map's
  maximum).

Nothing here knows about projects: :mod:`oddscope.core.workflows.segmentation`
feeds images in and caches the maps.
"""

from oddscope.core.models.patches.calibration import Calibration
from oddscope.core.models.patches.extractor import PatchExtractor
from oddscope.core.models.patches.scorer import MODES, PatchScorer

__all__ = ["MODES", "Calibration", "PatchExtractor", "PatchScorer"]
