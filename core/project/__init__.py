"""The project: one folder holding everything Oddscope knows about a collection.

Its on-disk vocabulary (the layout: every path, array name and setting), the
store (SQLite: items, metadata, labels, runs, settings; the writer lock), the
feature matrices, the per-item table, and labels in and out as CSV.  Knows nothing of
models: it stores arrays, whatever made them.
"""
