"""Images on disk: finding them (folders, manifests), decoding every format to pixels, the synthetic demo;
ground-truth defect masks (matching them to images, reading them).

Knows nothing of projects or models; everything above reads images through here.
"""
