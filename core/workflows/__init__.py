"""The workflows that join models to projects: indexing, extraction, active learning, retrieval, evaluation,
and what to do with a project that is not analysed yet.

Each is a plain function or class taking an open project, so the CLI, the app's
background tasks and scripts run the same code.
"""
