"""The project: one folder holding everything Oddscope knows about a collection.

Its on-disk vocabulary (the layout: every path, array name and setting), the
store (SQLite: items, metadata, labels, runs, settings; the writer lock), the
feature matrices, the per-item table, labels in and out as CSV, and the one rule
by which a user's CSV (labels, truth) names the project's images.  Knows nothing of
models: it stores arrays, whatever made them.
"""
