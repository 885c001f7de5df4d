"""Images behind fsspec URLs (issue 12): listed, read from a manifest and decoded through fsspec, tested on fsspec's
in-memory filesystem (no network); without fsspec a URL says how to install it."""
import sys

import fsspec
import numpy as np
import pytest
from PIL import Image

from oddscope.core.data.images import ImageReadError, load_array
from oddscope.core.data.ingest import read_manifest, scan_folder
from oddscope.core.data.remote import INSTALL_HINT, RemoteUnavailable, is_url, url_filesystem

ROOT = "memory://survey"


@pytest.fixture
def bucket(tmp_path):
    """Three PNGs (one in a sub-folder), a text file and a manifest in memory://survey; the local copies."""
    fs = fsspec.filesystem("memory")
    local = {}
    for i, name in enumerate(["b.png", "a.png", "deep/c.png"]):
        path = tmp_path / f"{i}.png"
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(path)
        fs.pipe(f"/survey/images/{name}", path.read_bytes())
        local[name] = path
    fs.pipe("/survey/images/notes.txt", b"not an image")
    fs.pipe("/survey/list.csv", b"path,band\nimages/a.png,g\nmemory://survey/images/b.png,r\n,i\n")
    yield local
    fs.rm("/survey", recursive=True)


def test_a_url_folder_is_listed_as_urls(bucket):
    scan = scan_folder(f"{ROOT}/images")
    assert scan.paths == [f"{ROOT}/images/a.png", f"{ROOT}/images/b.png", f"{ROOT}/images/deep/c.png"]
    assert scan.skipped == [] and scan.metas == [{}, {}, {}]


def test_a_manifest_at_a_url_keeps_urls_and_reads_relative_paths_under_its_folder(bucket):
    scan = read_manifest(f"{ROOT}/list.csv")
    assert scan.paths == [f"{ROOT}/images/a.png", f"{ROOT}/images/b.png"]
    assert scan.metas == [{"band": "g"}, {"band": "r"}]
    assert scan.skipped == [("list.csv:4", "empty path")]


def test_a_url_decodes_as_the_same_local_file(bucket):
    for name, path in bucket.items():
        np.testing.assert_array_equal(load_array(f"{ROOT}/images/{name}"), load_array(path))
    with pytest.raises(ImageReadError, match="cannot read URL"):
        load_array(f"{ROOT}/images/gone.png")
    with pytest.raises(ImageReadError, match="not an image|cannot identify|corrupt"):
        load_array(f"{ROOT}/images/notes.txt")


def test_what_is_a_url():
    assert is_url("s3://bucket/x.png") and is_url("file:///data/x.png") and is_url("memory://a")
    assert not is_url("/data/x.png") and not is_url("C:\\data\\x.png") and not is_url("images/x.png")


def test_without_fsspec_a_url_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "fsspec", None)  # `import fsspec` now raises ImportError
    with pytest.raises(RemoteUnavailable, match=INSTALL_HINT.replace("[", r"\[").replace("]", r"\]")):
        url_filesystem("s3://bucket/prefix")
    with pytest.raises(ImageReadError, match="fsspec"):
        load_array("s3://bucket/prefix/x.png")
