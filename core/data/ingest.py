"""Finding the images: a folder walked recursively, or a CSV manifest.

Scanning only looks at names and file-system facts (no decoding), so it is
fast on a million files.  Files that are plainly unusable (broken link, no
permission, empty, a name SQLite cannot store) are reported here with a
reason; undecodable contents are found later, while extracting features.

A scan never enters a folder that holds one of ``skip_folders_with`` (a
project's database, so a project kept inside its image folder never indexes
its own thumbnails) or a ``CACHEDIR.TAG`` (the cache-directory standard, which
Oddscope's thumbnail caches carry, as do many other tools' caches).
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

from oddscope.core.data.images import is_image_path
from oddscope.core.data.remote import is_url, join_url, list_urls, read_url

CACHE_TAG = "CACHEDIR.TAG"
_CACHE_TAG_TEXT = ("Signature: 8a477f597d28d172789f06886806bc55\n"
                   "# This file marks a cache folder made by Oddscope (https://bford.info/cachedir/).\n"
                   "# Oddscope never indexes a folder holding this file; it can be deleted with its folder.\n")


@dataclass
class ScanResult:
    paths: list[str] = field(default_factory=list)
    metas: list[dict] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


def _problem(path: str) -> str | None:
    """Why a file cannot be used, judged without opening it as an image."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "file name is not valid UTF-8; rename the file"
    if os.path.islink(path) and not os.path.exists(path):
        return "broken symbolic link"
    try:
        size = os.stat(path).st_size
    except OSError as err:
        return f"cannot access file: {err.strerror or err}"
    if not os.access(path, os.R_OK):
        return "permission denied"
    if size == 0:
        return "empty file (0 bytes)"
    return None


def tag_cache_folder(folder) -> None:
    """Mark ``folder`` as a cache (a ``CACHEDIR.TAG``): scans skip it, and so do backup tools."""
    tag = Path(folder) / CACHE_TAG
    if not tag.exists():
        tag.write_text(_CACHE_TAG_TEXT)


def scan_folder(root, skip_folders_with: tuple[str, ...] = ()) -> ScanResult:
    """Every image file under ``root`` (recursive, sorted, symlinked files followed).

    Folders holding a file named in ``skip_folders_with``, or a :data:`CACHE_TAG`, are not entered
    (``root`` itself included): they hold what Oddscope made, not the user's images.  An fsspec URL
    (:mod:`~oddscope.core.data.remote`) is listed by name only: its objects are checked when decoded.
    """
    if is_url(root):
        urls = [url for url in list_urls(root) if is_image_path(url)]
        return ScanResult(paths=urls, metas=[{} for _ in urls])
    root = Path(root)
    markers = (*skip_folders_with, CACHE_TAG)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder")
    result = ScanResult()

    def unlisted(err: OSError) -> None:
        result.skipped.append((_printable(err.filename), f"cannot list folder: {err.strerror or err}"))

    for folder, dirs, files in os.walk(root, onerror=unlisted):
        if any(marker in files for marker in markers):
            dirs.clear()
            continue
        dirs.sort()
        for name in sorted(files):
            if not is_image_path(name):
                continue
            path = os.path.join(folder, name)
            reason = _problem(path)
            if reason:
                result.skipped.append((_printable(path), reason))
            else:
                result.paths.append(path)
                result.metas.append({})
    return result


def read_manifest(csv_path) -> ScanResult:
    """Images listed in a CSV with a ``path`` column; every other column is kept as metadata.

    Relative paths are relative to the CSV file's folder.  Bytes that are not
    UTF-8 cost only their row: such a path is skipped with a reason, such a
    metadata value is kept with the bytes written as ``\\xNN``.  The CSV, and any of its paths, may be an
    fsspec URL (a relative path in a CSV at a URL is under that URL's folder); URLs are kept as they are.
    """
    if is_url(csv_path):
        return _read_manifest(io.StringIO(read_url(csv_path).decode("utf-8-sig", "surrogateescape"), newline=""),
                              csv_path, csv_path.rsplit("/", 1)[0])
    with open(csv_path, newline="", encoding="utf-8-sig", errors="surrogateescape") as fh:
        return _read_manifest(fh, str(csv_path), Path(csv_path).parent)


def _read_manifest(fh, csv_path: str, folder) -> ScanResult:
    """The rows of the open manifest ``fh`` (named ``csv_path``); relative paths are under ``folder`` (a URL
    when the manifest is one)."""
    result = ScanResult()
    name = csv_path.rsplit("/", 1)[-1] if is_url(csv_path) else Path(csv_path).name
    reader = csv.DictReader(fh)
    if not reader.fieldnames or "path" not in reader.fieldnames:
        raise ValueError(f"{csv_path} needs a 'path' column (found: {', '.join(reader.fieldnames or [])})")
    for line, row in enumerate(reader, start=2):
        raw = (row.pop("path") or "").strip()
        if not raw:
            result.skipped.append((f"{name}:{line}", "empty path"))
            continue
        if is_url(raw) or is_url(folder):  # an object: checked when decoded, not stat'ed one by one
            path, reason = join_url(folder, raw), None
        else:
            path = str(Path(raw) if Path(raw).is_absolute() else folder / raw)
            reason = _problem(path)
        if reason:
            result.skipped.append((_printable(path), reason))
            continue
        result.paths.append(path)
        result.metas.append({_printable(k): _value(_printable(v)) for k, v in row.items() if k})
    return result


def _value(text: str | None):
    """Numbers stay numbers so metadata columns can colour the map."""
    if text is None:
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _printable(text: str | None) -> str | None:
    """Text safe for SQLite, CSV and terminals: undecodable bytes (surrogate escapes) become ``\\xNN``."""
    return None if text is None else os.fsencode(text).decode("utf-8", "backslashreplace")
