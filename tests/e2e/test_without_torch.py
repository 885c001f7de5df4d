"""The desktop bundle's path: index and open a project with torch, torchvision, timm and open_clip absent.

The bundle ships the default encoder's OpenVINO export and no torch; this runs the real CLI in a
process where importing torch fails, as it does in the bundle.
"""

import pytest
from without_torch import oddscope_without_torch

from oddscope.core.data.demo import make_demo
from oddscope.core.models.encoders import load_encoder


@pytest.fixture(scope="module")
def exported():
    """The default encoder exported into this session's cache, as a bundle build does."""
    load_encoder(device="cpu")


def test_index_evaluate_and_screenshot_without_torch(exported, tmp_path):
    demo = make_demo(tmp_path / "demo", n_images=80, seed=2)
    indexed = oddscope_without_torch("index", demo.images_dir, "--project", tmp_path / "project", "-q",
                                     cwd=tmp_path)
    assert indexed.returncode == 0, indexed.stderr
    assert "Runtime   openvino" in indexed.stdout
    assert "Left out  detector autoencoder needs the package 'torch'" in indexed.stdout
    evaluated = oddscope_without_torch("evaluate", "--project", tmp_path / "project", "--truth", demo.truth_csv,
                                       cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "knn" in evaluated.stdout and "autoencoder" not in evaluated.stdout
    head = oddscope_without_torch("guidance", "add", "--project", tmp_path / "project", "--nuisance", "sky_tint",
                                  "--method", "nonlinear", cwd=tmp_path)
    assert head.returncode != 0 and "nonlinear needs the package 'torch'" in head.stderr + head.stdout
    assert "Traceback" not in head.stderr
    maps = oddscope_without_torch("maps", "compute", "--project", tmp_path / "project", cwd=tmp_path)
    assert maps.returncode != 0 and "needs torch" in maps.stderr and "Traceback" not in maps.stderr
    shot = oddscope_without_torch("open", tmp_path / "project", "--screenshot", tmp_path / "shot.png",
                                  cwd=tmp_path)
    assert shot.returncode == 0, shot.stderr
    assert (tmp_path / "shot.png").stat().st_size > 10_000
