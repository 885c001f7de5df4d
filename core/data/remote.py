"""Images behind fsspec URLs (``s3://bucket/prefix``, ``gs://``, ``file://``, ``memory://``, ...).

A survey's images often live in object storage that every node of a cluster reads, not on a shared disk.
Any path with a protocol (``name://``) is a URL: it is listed and read through `fsspec
<https://filesystem-spec.readthedocs.io>`_, and a project stores it as the URL itself, so the desktop app
reads the same object (its thumbnails and viewer go through :func:`oddscope.core.data.images.load_array`,
which reads URLs here).  fsspec, and the package of a protocol (``s3fs`` for ``s3://``), are an optional
extra: without them a URL says how to install them.

Listing looks at names only, as a folder scan does: an object that cannot be read is found, with its
reason, when it is decoded.  Nothing here stats objects one by one (10^7 requests to object storage).
"""

from __future__ import annotations

import re

INSTALL_HINT = "pip install 'oddscope[cloud]'"
URL_PATTERN = r"^[A-Za-z][A-Za-z0-9+.-]+://"  # two letters at least: a Windows drive (C:\) is a path
_URL = re.compile(URL_PATTERN)


class RemoteUnavailable(RuntimeError):
    """A URL was given but fsspec, or the package of its protocol, is not installed."""


def is_url(path) -> bool:
    """Whether ``path`` names an object through fsspec (``protocol://...``) rather than a local file."""
    return isinstance(path, str) and bool(_URL.match(path))


def url_filesystem(url: str):
    """``(filesystem, path within it)`` for ``url``, or :class:`RemoteUnavailable` saying what to install."""
    try:
        import fsspec
    except ImportError:
        raise RemoteUnavailable(f"{url}: reading URLs needs fsspec, which is not installed: {INSTALL_HINT}") from None
    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as err:  # a protocol whose package is missing, or an unknown one
        raise RemoteUnavailable(f"{url}: {err} ({INSTALL_HINT} installs s3fs for s3://)") from None


def join_url(base: str, relative: str) -> str:
    """``relative`` (a manifest's path) under the folder URL ``base``; a URL stays as it is."""
    return relative if is_url(relative) else f"{base.rstrip('/')}/{relative.lstrip('/')}"


def list_urls(url: str) -> list[str]:
    """Every object under the folder ``url`` (recursive, sorted), spelled as ``url`` plus its name."""
    fs, root = url_filesystem(url)
    if not fs.isdir(root):
        raise FileNotFoundError(f"{url} is not a folder")
    root = root.rstrip("/")
    names = sorted(name for name, info in fs.find(root, detail=True).items() if info.get("type") != "directory")
    return [join_url(url, name[len(root):]) for name in names]


def read_url(url: str) -> bytes:
    """The bytes of the object at ``url`` (an image is read whole: decoders seek)."""
    fs, path = url_filesystem(url)
    return fs.cat_file(path)

