"""Scanning folders and manifests: every image found, the unusable listed with a reason."""

import os

import numpy as np
import pytest
from PIL import Image

from oddscope.core.data.ingest import CACHE_TAG, read_manifest, scan_folder, tag_cache_folder


def _png(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(path)
    return path


def test_recursive_scan_finds_images_and_lists_the_unusable(tmp_path):
    _png(tmp_path / "a.png")
    _png(tmp_path / "sub" / "deeper" / "b.PNG")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "empty.jpg").write_bytes(b"")
    os.symlink(tmp_path / "gone.png", tmp_path / "broken.png")
    result = scan_folder(tmp_path)
    assert [os.path.basename(p) for p in result.paths] == ["a.png", "b.PNG"]
    reasons = {os.path.basename(p): r for p, r in result.skipped}
    assert reasons == {"empty.jpg": "empty file (0 bytes)", "broken.png": "broken symbolic link"}


def test_unreadable_permissions(tmp_path, monkeypatch):
    p = _png(tmp_path / "secret.png")
    p.chmod(0)
    if os.access(p, os.R_OK):  # root reads anything: pretend to be an ordinary user
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda path, mode: False if str(path) == str(p) else real_access(path, mode))
    assert scan_folder(tmp_path).skipped == [(str(p), "permission denied")]


def test_manifest_keeps_metadata_and_resolves_relative_paths(tmp_path):
    _png(tmp_path / "imgs" / "x.png")
    _png(tmp_path / "imgs" / "y.png")
    (tmp_path / "m.csv").write_text("path,mag,field\nimgs/x.png,21.5,COSMOS\nimgs/y.png,19,\n,1,z\n")
    result = read_manifest(tmp_path / "m.csv")
    assert result.paths == [str(tmp_path / "imgs" / "x.png"), str(tmp_path / "imgs" / "y.png")]
    assert result.metas[0] == {"mag": 21.5, "field": "COSMOS"} and result.metas[1]["mag"] == 19
    assert result.skipped == [("m.csv:4", "empty path")]


def test_manifest_without_path_column(tmp_path):
    (tmp_path / "m.csv").write_text("file\nx.png\n")
    with pytest.raises(ValueError, match="'path' column"):
        read_manifest(tmp_path / "m.csv")


def test_a_scan_never_enters_a_project_or_a_cache_folder(tmp_path):
    _png(tmp_path / "a.png")
    _png(tmp_path / "proj" / "thumbnails" / "0.png")  # a project kept inside its image folder
    (tmp_path / "proj" / "oddscope.sqlite").write_bytes(b"")
    _png(tmp_path / "cache" / "1.png")
    tag_cache_folder(tmp_path / "cache")
    assert (tmp_path / "cache" / CACHE_TAG).read_text().startswith("Signature: 8a477f597d28d172789f06886806bc55")
    assert [os.path.basename(p) for p in scan_folder(tmp_path, skip_folders_with=("oddscope.sqlite",)).paths] == [
        "a.png"]
    assert scan_folder(tmp_path / "cache").paths == []
