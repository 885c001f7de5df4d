"""Attributes in words end to end: a small demo indexed with the tiny local CLIP (never a download), a space
from phrases through the CLI, and the refusal on a project whose encoder has no text tower."""

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from oddscope.app.cli import main
from oddscope.core.models.guidance.prompts import phrase_directions
from oddscope.core.project.store import Project
from oddscope.core.workflows.segmentation import project_encoder
from oddscope.core.workflows.spaces import space_features, spaces

pytest.importorskip("open_clip")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory, tiny_clip):
    """60 survey images (3 under a blue sky) indexed from the manifest with the tiny CLIP."""
    from oddscope.core.data.demo import make_demo
    from oddscope.core.workflows.pipeline import IndexOptions, index_images

    _, weights = tiny_clip
    root = tmp_path_factory.mktemp("clip-demo")
    demo = make_demo(root, n_images=60, seed=3, nuisance_fraction=0.05)
    options = IndexOptions(encoder="clip:oddscope-test-tiny-clip", weights=str(weights), device="cpu",
                           detectors=("knn", "iforest"), make_map=False, make_clusters=False, workers=0)
    with Project.create(root / "project") as project:
        index_images(project, demo.manifest_csv, options=options)
    return root


@pytest.fixture
def clip_project(clip_dir, tmp_path):
    shutil.copytree(clip_dir, tmp_path / "clip")
    return tmp_path / "clip" / "project"


def test_words_remove_the_nuisance_phrase_and_make_a_space_like_any_other(clip_project):
    result = run("guidance", "text", "--project", clip_project, "--nuisance", "background colour",
                 "--nuisance", "a blue sky", "--relevant", "shape of the object", "--weight", "2",
                 "--name", "words", "-q")
    assert result.exit_code == 0, result.output
    assert "Added feature space 'words' (words, clip-prompts, 3 direction(s)" in result.output
    with Project.open(clip_project) as project:
        spec = spaces(project)["words"]
        assert spec["nuisance_words"] == ["background colour", "a blue sky"]
        assert spec["relevant_words"] == ["shape of the object"] and spec["weight"] == 2.0
        ids = project.load_array("test_ids")
        raw, guided = space_features(project, ids), space_features(project, ids, "words")
        encoder = project_encoder(project, device="cpu")
        nuisance = phrase_directions(encoder.encode_text, ["background colour", "a blue sky"])
        relevant = phrase_directions(encoder.encode_text, ["shape of the object"])
        assert np.abs(guided @ nuisance.T).max() < 1e-4 < np.abs(raw @ nuisance.T).min()
        # the relevant direction (its part orthogonal to the nuisance ones) counts twice
        basis, _ = np.linalg.qr(np.concatenate([nuisance, relevant]).T.astype(np.float64))
        kept = basis[:, 2]
        np.testing.assert_allclose(guided @ kept, 2 * (raw @ kept), rtol=1e-3, atol=1e-4)
        for detector in ("knn", "iforest"):
            assert np.isfinite(project.load_array(f"score_{detector}@words")[ids]).all()
    ranked = run("rank", "--project", clip_project, "knn", "--space", "words")
    assert ranked.exit_code == 0, ranked.output
    listed = run("guidance", "list", "--project", clip_project)
    assert "words: ignore background colour, a blue sky; keep shape of the object" in listed.output
    evaluated = run("evaluate", "guidance", "--project", clip_project, "--truth", clip_project.parent / "truth.csv",
                    "--nuisance", "sky_tint", "--json")
    assert evaluated.exit_code == 0, evaluated.output
    assert list(json.loads(evaluated.output)["spaces"]) == ["raw", "words"]


def test_relevant_words_alone_keep_only_their_span(clip_project):
    result = run("guidance", "text", "--project", clip_project, "--relevant", "shape of the object",
                 "--relevant", "a spiral galaxy", "--name", "shape", "-q")
    assert result.exit_code == 0, result.output
    with Project.open(clip_project) as project:
        ids = project.load_array("test_ids")
        guided = space_features(project, ids, "shape")
        relevant = phrase_directions(project_encoder(project, device="cpu").encode_text,
                                     ["shape of the object", "a spiral galaxy"])
    inside, *_ = np.linalg.lstsq(relevant.T, guided.T, rcond=None)
    np.testing.assert_allclose(relevant.T @ inside, guided.T, atol=1e-5)  # nothing outside their span


def test_words_are_refused_without_a_clip_encoder_and_without_phrases(demo_project, clip_project):
    refused = run("guidance", "text", "--project", demo_project, "--nuisance", "background colour", "--name", "w")
    assert refused.exit_code != 0 and "needs a CLIP encoder" in refused.output
    assert "Traceback" not in refused.output
    with Project.open(demo_project) as project:
        assert spaces(project) == {}
    empty = run("guidance", "text", "--project", clip_project, "--name", "w")
    assert empty.exit_code != 0 and "at least one nuisance or relevant phrase" in empty.output
