"""Anomaly detectors on image features, all behind one fit/score interface, one module per family.

Which detector works best depends on the collection, so users run several and
compare them side by side (see :mod:`oddscope.core.models.metrics`).  Their
names, defaults and the standard set are in
:data:`oddscope.core.models.registry.DETECTORS` (build one with
:func:`~oddscope.core.models.registry.make_detector`); a new detector is a
module here, subclassing :class:`~oddscope.core.models.detectors.base.Detector`,
plus one registry entry.
"""
