"""The project: one folder holding everything Oddscope knows about a collection.

The store (SQLite: items, metadata, labels, runs, settings), the feature
matrices, the per-item table, labels in and out as CSV, and the one rule by
which a user's CSV (labels, truth) names the project's images.  Knows nothing of
models: it stores arrays, whatever made them.
"""
