"""The models: encoders, detectors, rankers, kNN, reducers, the map, clustering, metrics.

Plain arrays in, arrays out, scikit-learn's fit/score conventions; nothing here
knows what a project is, so a scientist can use any model on their own arrays.
Encoders, detectors, rankers and metrics are named in :mod:`.registry`, which
lists them without importing them; feature matrices are checked by
:mod:`.validation` and reduced by :mod:`.reduction`.
"""
