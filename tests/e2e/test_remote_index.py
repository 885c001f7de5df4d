"""`oddscope index URL` (issue 12): a folder behind an fsspec URL (here ``file://``, no network) is indexed on one
machine and on a local Ray; the project keeps the URLs, and the desktop's image reader opens them."""
import numpy as np
import pytest
from click.testing import CliRunner

from oddscope.app.cli import main
from oddscope.core.data.demo import make_demo
from oddscope.core.data.images import load_array
from oddscope.core.project.layout import score_array
from oddscope.core.project.store import Project

N_IMAGES = 24


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("remote")
    make_demo(root, n_images=N_IMAGES, seed=5)
    return root / "images"


def _index(url, project, *extra):
    result = CliRunner().invoke(main, ["index", url, "--project", str(project), "--no-map", "--no-clusters",
                                       "--detectors", "knn,iforest", "-q", *extra], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def _check_project(root, images):
    with Project.open(root) as project:
        stored = list(project.items(with_meta=False)["path"])
        assert len(stored) == N_IMAGES and all(p.startswith(images.as_uri() + "/") for p in stored)
        assert project.resolve_all(stored) == stored  # a URL stays the URL: usable from any machine
        assert np.isfinite(project.load_array(score_array("knn"))).sum() == N_IMAGES
        name = stored[0].rsplit("/", 1)[1]
        np.testing.assert_array_equal(load_array(stored[0]), load_array(next(images.rglob(name))))  # the viewer's read


def test_index_a_url_folder_keeps_the_urls(images, tmp_path):
    _index(images.as_uri(), tmp_path / "project")
    _check_project(tmp_path / "project", images)


def test_index_a_url_folder_on_the_cluster(local_ray, images, tmp_path):
    _index(images.as_uri(), tmp_path / "project", "--cluster", "auto")
    _check_project(tmp_path / "project", images)


def test_a_url_whose_protocol_is_not_installed_says_how_to_install_it(tmp_path):
    result = CliRunner().invoke(main, ["index", "nosuchprotocol://bucket/prefix", "--project", str(tmp_path / "p")])
    assert result.exit_code == 2 and "pip install 'oddscope[cloud]'" in result.output
    assert not (tmp_path / "p").exists()
