"""Whether a project has anything to explore yet and, if not, what the user should do about it.

A project can be left empty (no image found), with too few readable images
(the rest skipped), or read but not analysed (an interrupted run); each must
still open, with advice instead of an empty window.  Light on purpose (no
models imported): the app asks on its GUI thread.
"""

from __future__ import annotations

import pandas as pd

from oddscope.core.project.layout import ProjectLayout

MIN_IMAGES = 2  # the detectors, the map and the clusters need at least this many readable images


def advice_if_not_analysed(root, statuses: pd.Series, analysed: bool) -> str | None:
    """What to do with the project at ``root`` whose items have ``statuses``; None once it is ``analysed``."""
    if analysed:
        return None
    index_again = (f"File ▸ Open images folder… (choose this project folder), "
                   f"or `oddscope index IMAGES --project {root}`")
    counts = statuses.value_counts()
    n, ok, pending = len(statuses), int(counts.get("ok", 0)), int(counts.get("pending", 0))
    if n == 0:
        return f"This project holds no images yet. Index a folder of images into it: {index_again}."
    if pending:
        return (f"{pending:,} of the {n:,} images are not read yet: the indexing stopped before it finished. "
                f"Run `oddscope index --project {root}` to finish it.")
    if ok < MIN_IMAGES:
        return (f"Nothing to explore yet: {ok} of the {n:,} images could be read, and Oddscope needs at least "
                f"{MIN_IMAGES}. The others are listed with the reason in {ProjectLayout(root).skipped_report}. Add readable images "
                f"and index again: {index_again}.")
    return (f"The {ok:,} readable images are not analysed yet: the indexing stopped before it finished. "
            f"Run `oddscope index --project {root}` to finish it.")
