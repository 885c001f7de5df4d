"""Images on disk: finding them (folders, manifests), decoding every format to pixels, ground-truth masks, the synthetic demo.

Knows nothing of projects or models; everything above reads images through here.
"""
