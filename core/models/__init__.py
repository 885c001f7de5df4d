"""The models: encoders, detectors, rankers, kNN, reducers, the map, clustering, metrics.

Plain arrays in, arrays out, scikit-learn's fit/score conventions; nothing here
knows what a project is, so a scientist can use any model on their own arrays.
"""
