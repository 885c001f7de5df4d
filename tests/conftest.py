"""Shared pytest setup: Qt tests run without a display; one small demo project and one texture project per session."""
import atexit
import json
import os
import shutil
import tempfile

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Exported encoders (OpenVINO) go to a cache of this session, never to the user's home; the CLI's subprocesses
# inherit it, so the default encoder is exported once per session.
os.environ["ODDSCOPE_CACHE"] = tempfile.mkdtemp(prefix="oddscope-test-cache-")
atexit.register(shutil.rmtree, os.environ["ODDSCOPE_CACHE"], ignore_errors=True)

DEMO_IMAGES = 150


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory):
    """A small demo survey (images/, truth.csv) indexed with the real default encoder into project/.

    Built once per session; tests that write must use ``demo_project`` (a private copy).
    """
    from oddscope.core.data.demo import make_demo
    from oddscope.core.project.store import Project
    from oddscope.core.workflows.pipeline import index_images

    root = tmp_path_factory.mktemp("demo")
    make_demo(root, n_images=DEMO_IMAGES, seed=1, nuisance_fraction=0.0)  # guidance tests add their own
    with Project.create(root / "project") as project:
        index_images(project, root / "images")
    return root


TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory):
    """A tiny CLIP registered as a custom open_clip config (the smallest built-in, ViT-S-32, is 63M
    parameters and a 250 MB checkpoint), with random weights saved to a file."""
    import open_clip
    import torch

    folder = tmp_path_factory.mktemp("clip")
    (folder / "oddscope-test-tiny-clip.json").write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(folder / "oddscope-test-tiny-clip.json")
    torch.manual_seed(2)
    model = open_clip.create_model("oddscope-test-tiny-clip").eval()
    path = folder / "tiny_clip.pt"
    torch.save(model.state_dict(), path)
    return model, path


@pytest.fixture(scope="session")
def texture_dir(tmp_path_factory):
    """The texture collection with planted defects (:mod:`textures`), indexed once per session.

    Tests that write (maps, corrections) use a copy of it.
    """
    from textures import make_texture_project

    return make_texture_project(tmp_path_factory.mktemp("texture"))


@pytest.fixture
def demo_project(demo_dir, tmp_path):
    """A writable copy of the demo project (images copied along: stored paths are relative)."""
    shutil.copytree(demo_dir, tmp_path / "demo")
    return tmp_path / "demo" / "project"
