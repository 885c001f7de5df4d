"""Which item a path written in a user's CSV (labels, truth) names: one rule for every command that reads one.

A relative path is tried against the CSV file's folder, then the project's
image folder, then the current directory; the first that names an item wins.
The reader says which base matched how many rows, and a file of which no row
matches is an error (a wrong folder, not a few stray rows).
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from oddscope.core.data.remote import is_url, join_url
from oddscope.core.project.layout import IMAGE_ROOT
from oddscope.core.project.store import Project

PATH_RULE = ("Relative paths are looked up against the CSV file's folder, then the project's image folder (the "
             "folder it was indexed from), then the current directory; the first that names an image wins.")


def remember_image_root(project: Project, folder) -> None:
    """Record the folder the project's images were indexed from (the newest one indexed).

    Kept as item paths are (relative when beside the project), so it survives moving both together.
    """
    IMAGE_ROOT.write(project, project.stored_path(folder if is_url(folder) else Path(folder).resolve()))


def image_root(project: Project) -> Path | str | None:
    """The folder the project was indexed from (a URL as a string); None for a project indexed before this was
    recorded."""
    root = IMAGE_ROOT.read(project)
    return project.resolve(root) if root else None


class CsvPaths:
    """Finds the items that the paths of one CSV file name, by :data:`PATH_RULE`, counting which base matched."""

    def __init__(self, project: Project, csv_path):
        self.project, self.csv_path = project, Path(csv_path)
        bases = [("the CSV file's folder", self.csv_path.resolve().parent),
                 ("the project's image folder", image_root(project)), ("the current directory", Path.cwd())]
        self.bases = [(name, base) for name, base in bases if base is not None]
        self.matched: Counter = Counter()  # base name (or "absolute") -> rows
        self.unmatched: list[str] = []

    def item_id(self, text: str) -> int | None:
        """The item ``text`` names, or None (then remembered as unmatched)."""
        if os.path.isabs(text) or is_url(text):
            candidates = [("absolute", text)]
        else:
            candidates = [(name, join_url(base, text) if is_url(base) else os.path.normpath(os.path.join(base, text)))
                          for name, base in self.bases]
        for name, path in candidates:
            item_id = self.project.item_id(path)
            if item_id is not None:
                self.matched[name] += 1
                return item_id
        self.unmatched.append(text)
        return None

    def summary(self) -> str:
        """Which base the paths matched against, e.g. ``paths: 12 relative to the CSV file's folder (/data)``."""
        where = dict(self.bases)
        parts = [f"{n} absolute" if name == "absolute" else f"{n} relative to {name} ({where[name]})"
                 for name, n in self.matched.items()]
        if self.unmatched:
            parts.append(f"{len(self.unmatched)} not in the project")
        return "paths: " + ("; ".join(parts) or "none")

    def nothing_matched(self) -> str | None:
        """The error when rows had paths and none named an image of the project (else None)."""
        if self.matched or not self.unmatched:
            return None
        tried = ", ".join(f"{name} ({base})" for name, base in self.bases)
        return (f"no path in {self.csv_path} names an image of the project {self.project.root} (first: "
                f"{self.unmatched[0]!r}; tried {tried}). {PATH_RULE}")
