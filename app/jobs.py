"""The window's background jobs: Qt-free top-level functions run in child processes or worker threads.

Child processes receive them pickled by name, so they stay importable
module-level functions with plain arguments; each opens a connection of its
own (a sqlite3 connection must not be used by two threads at once, and the
window's connection holds the writer lock only while nothing else writes).
"""

from __future__ import annotations

from oddscope.core.progress import Progress
from oddscope.core.project.store import Project
from oddscope.core.workflows.active_session import ActiveSession
from oddscope.core.workflows.retrieval import Neighbours


def index_options(values: dict):
    """IndexOptions from the Settings values (the pipeline loads torch and UMAP: call on a worker)."""
    from oddscope.core.workflows.pipeline import IndexOptions

    chosen = {"detectors": tuple(values["detectors"])} if values["detectors"] else {}
    return IndexOptions(encoder=values["encoder"], weights=values["weights"] or None, k=int(values["k"]), **chosen)


def index_new_project(project_dir, images, values: dict, progress=None) -> dict:
    """Child process: create the project and index ``images`` into it.

    Returns the summary as a plain dict: unpickling a pipeline object would make
    the window's process import torch, and that import holds the GIL for whole
    tenths of a second (a frozen window).
    """
    from oddscope.core.workflows.pipeline import index_images

    with Project.create(project_dir) as project:
        summary = index_images(project, images, options=index_options(values), progress=progress)
    return {"n_items": summary.n_items, "skipped": list(summary.skipped), "seconds": dict(summary.seconds)}


def update_project(root, images, values: dict, reindex: bool, progress=None) -> None:
    """Child process: index (new images or a new encoder) or re-analyse the project at ``root``."""
    from oddscope.core.workflows.pipeline import analyse, index_images

    with Project.open(root, writable=True) as project:
        if reindex:
            index_images(project, images, options=index_options(values), progress=progress)
        else:
            analyse(project, index_options(values), progress=progress)


def import_labels_into(root, path, progress=None):
    """Import a labels CSV through a writer connection of this thread's own."""
    from oddscope.core.project.labels_io import import_labels

    with Project.open(root, writable=True) as project:
        return import_labels(project, path)


def export_table_to(root, path, progress=None):
    """Write the project's table to ``path`` (CSV or Parquet) from a read-only connection of its own."""
    from oddscope.core.project.table import export_table

    with Project.open(root) as project:
        return export_table(project, path)


def prepare_session(root, method: str, progress=None) -> ActiveSession:
    """Read the features and prepare ``method`` (seconds at 10^5 items: PCA, kNN graph).

    The window runs it as a task (progress bar, Cancel) and hands the result to
    :meth:`~oddscope.app.learning.ActiveLearner.set_session`.
    """
    with Project.open(root) as project:
        return ActiveSession(project, method, progress=progress)


def neighbour_query(root, progress: Progress):
    """``(item_id, k, metric) -> DataFrame`` for the neighbours panel's thread.

    It opens its own read-only connection there: a sqlite3 connection must not
    be used by two threads at once, and the GUI thread uses the model's.
    ``progress.cancel()`` stops a first-time index build (minutes at 10^6 items).
    """
    cache = {}

    def query(item_id: int, k: int, metric: str):
        if "neighbours" not in cache:
            cache["neighbours"] = Neighbours(Project.open(root), progress)
        return cache["neighbours"].of_item(item_id, k, metric)

    return query
