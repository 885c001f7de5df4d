"""Shared pytest setup: Qt tests run without a display; one small demo project and one texture project per session."""
import atexit
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
