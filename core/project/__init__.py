"""The project: one folder holding everything Oddscope knows about a collection.

The store (SQLite: items, metadata, labels, runs, settings), the feature
matrices, the per-item table, and labels in and out as CSV.  Knows nothing of
models: it stores arrays, whatever made them.
"""
