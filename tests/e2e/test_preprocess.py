"""`oddscope index --preprocess`: science steps before the encoder, recorded in the project like the weights."""

import numpy as np
import pytest
from click.testing import CliRunner
from hostile import FakeEncoder

from oddscope.app.cli import main
from oddscope.core.data.demo import make_demo
from oddscope.core.models import encoders
from oddscope.core.project.features import load_features
from oddscope.core.project.layout import ENCODER
from oddscope.core.project.store import Project

QUICK = ("--no-map", "--no-clusters", "-q", "--detectors", "knn", "--workers", "0")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def fake(monkeypatch):
    """Index with the fast test double: its decoding is the real one, science steps included."""
    encoder = FakeEncoder()
    monkeypatch.setattr(encoders, "load_encoder", lambda *args, **kwargs: encoder)
    return encoder


def _features(project_dir) -> tuple[str, np.ndarray]:
    with Project.open(project_dir) as project:
        key = ENCODER.read(project)["key"]
        return key, load_features(project, key, project.ids_with_status("ok", "test"))


def test_preprocess_is_recorded_kept_changed_and_reset(fake, tmp_path):
    make_demo(tmp_path, n_images=30, seed=2, nuisance_fraction=0.0)
    images, project = tmp_path / "images", tmp_path / "project"
    n = sum(1 for _ in images.iterdir())

    plain = run("index", images, "--project", project, *QUICK)
    assert plain.exit_code == 0, plain.output
    assert "Preprocess none" in plain.output
    plain_key, plain_features = _features(project)

    steps = "clip=3, background"  # any order and spacing: recorded in the canonical form
    first = run("index", images, "--project", project, "--preprocess", steps, *QUICK)
    assert first.exit_code == 0, first.output
    assert "Preprocess background,clip=3" in first.output and f"features computed {n}, reused 0" in first.output
    info = run("info", "--project", project)
    assert "Preprocess background,clip=3" in info.output.splitlines()
    key, features = _features(project)
    assert key != plain_key and not np.allclose(features, plain_features)  # the encoder saw other pixels

    kept = run("index", images, "--project", project, *QUICK)  # no --preprocess: the recorded steps stay
    assert "Preprocess background,clip=3" in kept.output and f"features computed 0, reused {n}" in kept.output
    assert "analysis kept" in kept.output

    cropped = run("index", images, "--project", project, "--preprocess", "crop=0.5", *QUICK)
    assert "Preprocess crop=0.5" in cropped.output and f"features computed {n}, reused 0" in cropped.output
    assert "analysis kept" not in cropped.output

    back = run("index", images, "--project", project, "--preprocess", "none", *QUICK)
    assert "Preprocess none" in back.output and f"reused {n}" in back.output  # the first features, cached
    assert _features(project)[0] == plain_key
    assert "Preprocess none" in run("info", "--project", project).output.splitlines()


def test_a_wrong_spec_is_refused_before_any_work(fake, tmp_path):
    result = run("index", tmp_path, "--project", tmp_path / "p", "--preprocess", "crop=2", *QUICK)
    assert result.exit_code == 2 and "Invalid value for --preprocess" in result.output
    assert "crop is the share of each side kept, between 0 and 1" in result.output
    assert not (tmp_path / "p").exists() and fake.encoded == 0
