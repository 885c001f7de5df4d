"""Guidance end to end on a small demo with nuisance-only outliers (normal galaxies under a rare blue sky)."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from oddscope.app.cli import main
from oddscope.core.project.layout import ANOMALY_DETECTOR, RANKING
from oddscope.core.project.store import Project
from oddscope.core.workflows.guidance import add_space, remove_space
from oddscope.core.workflows.spaces import spaces

SPACE = "no-sky_tint"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def sky_dir(tmp_path_factory):
    """300 survey images + 6 under a blue sky, indexed from the manifest (sky_tint is metadata) with the real
    encoder; then the sky_tint space added through the CLI."""
    from oddscope.core.data.demo import make_demo
    from oddscope.core.workflows.pipeline import IndexOptions, index_images

    root = tmp_path_factory.mktemp("sky")
    demo = make_demo(root, n_images=300, seed=2, nuisance_fraction=0.02)
    with Project.create(root / "project") as project:
        index_images(project, demo.manifest_csv, options=IndexOptions(make_map=False, make_clusters=False,
                                                                      workers=0))
    result = run("guidance", "add", "--project", root / "project", "--nuisance", "sky_tint", "-q")
    assert result.exit_code == 0, result.output
    assert f"Added feature space '{SPACE}' (nuisance, leace, 1 direction(s)" in result.output
    return root


@pytest.fixture
def sky_project(sky_dir, tmp_path):
    shutil.copytree(sky_dir, tmp_path / "sky")
    return tmp_path / "sky" / "project"


def test_guidance_on_the_tint_empties_the_top_50_of_nuisance_outliers_and_keeps_the_anomalies(sky_dir):
    result = run("evaluate", "guidance", "--project", sky_dir / "project", "--truth", sky_dir / "truth.csv",
                 "--nuisance", "sky_tint", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert list(data["spaces"]) == ["raw", SPACE]
    raw, guided = data["spaces"]["raw"], data["spaces"][SPACE]
    for row in (raw, guided):
        assert {"probe_linear", "probe_nonlinear", "probe_chance", "auroc", "ap", "nuisance_outliers_top50"} <= set(row)
    assert data["n_nuisance_outliers"] == 6
    assert raw["nuisance_outliers_top50"] > 0 and guided["nuisance_outliers_top50"] == 0
    assert guided["auroc"] >= raw["auroc"] - 0.02
    assert raw["probe_linear"] > max(raw["probe_chance"], guided["probe_linear"])  # the tint is plain to see...
    assert guided["probe_linear"] <= guided["probe_chance"] + 0.005  # ...and gone
    table = run("evaluate", "guidance", "--project", sky_dir / "project", "--truth", sky_dir / "truth.csv",
                "--nuisance", "sky_tint")
    assert table.exit_code == 0 and table.output.splitlines()[2].startswith("raw")


def test_list_shows_the_space_with_its_probes(sky_dir):
    result = run("guidance", "list", "--project", sky_dir / "project")
    assert result.exit_code == 0 and result.output.startswith(f"{SPACE:<16} nuisance sky_tint (metadata), leace")
    spec = json.loads(run("guidance", "list", "--project", sky_dir / "project", "--json").output)[SPACE]
    assert spec["probe_before"]["probe_linear"] > spec["probe_after"]["probe_linear"]


def test_rank_export_and_neighbours_choose_a_space(sky_project, tmp_path):
    assert run("rank", "--project", sky_project, "knn", "--space", SPACE).exit_code == 0
    with Project.open(sky_project) as project:
        assert RANKING.read(project) == f"knn@{SPACE}"
        guided = project.load_array(f"score_knn@{SPACE}")
    out = tmp_path / "raw.csv"
    assert run("export", "--project", sky_project, "--out", out, "--space", "raw").exit_code == 0
    assert run("export", "--project", sky_project, "--out", tmp_path / "guided.csv").exit_code == 0
    raw_table, guided_table = pd.read_csv(out), pd.read_csv(tmp_path / "guided.csv")
    np.testing.assert_allclose(raw_table["anomaly_score"], raw_table["score_knn"], rtol=1e-6)
    np.testing.assert_allclose(guided_table["anomaly_score"], guided[guided_table["item_id"]], rtol=1e-6)
    assert f"score_knn@{SPACE}" in raw_table  # every space's scores are exported
    path = raw_table["path"].iloc[0]
    near = run("neighbours", "--project", sky_project, path, "-k", "3", "--space", SPACE)
    assert near.exit_code == 0 and len(near.output.splitlines()) == 3
    assert run("export", "--project", sky_project, "--out", out, "--space", "nowhere").exit_code != 0


def test_active_learning_runs_in_a_space_and_removing_the_space_undoes_it(sky_project):
    with Project.open(sky_project, writable=True) as project:
        ids = project.load_array("test_ids")[:6]
        project.set_labels([(i, 5 if n % 2 else 0, ...) for n, i in enumerate(ids)])
    result = run("rank", "--project", sky_project, "oddscope", "--space", SPACE)
    assert result.exit_code == 0, result.output
    with Project.open(sky_project, writable=True) as project:
        assert RANKING.read(project) == f"oddscope@{SPACE}" and ANOMALY_DETECTOR.read(project) == f"knn@{SPACE}"
        assert project.load_array(f"rank_oddscope@{SPACE}") is not None
    assert run("guidance", "remove", "--project", sky_project, SPACE).exit_code == 0
    with Project.open(sky_project) as project:
        assert spaces(project) == {}
        assert not [a for a in project.array_names() if "@" in a]
        assert RANKING.read(project) == "oddscope" and ANOMALY_DETECTOR.read(project) == "knn"
        assert not project.layout.guidance_model(SPACE).exists()
        assert project.load_array("score_knn") is not None  # the raw scores are untouched


def test_a_tag_prefix_names_a_nuisance_and_a_reanalysis_refits_every_space(sky_project):
    from oddscope.core.workflows.pipeline import IndexOptions, analyse

    with Project.open(sky_project, writable=True) as project:
        ids = project.load_array("test_ids")
        project.set_labels([(i, ..., [f"pose:{'left' if n % 3 else 'right'}"]) for n, i in enumerate(ids[:60])])
        spec = add_space(project, "no-pose", "pose")
        assert spec["source"] == "tags" and spec["n_fit"] == 60
        first = project.load_array("score_knn@no-pose")
        analyse(project, IndexOptions(detectors=("knn", "iforest"), make_map=False, make_clusters=False))
        assert set(spaces(project)) == {SPACE, "no-pose"}
        assert np.isfinite(project.load_array("score_knn@no-pose")[ids]).all()
        assert project.load_array(f"score_mahalanobis@{SPACE}") is None  # only what this analysis ran
        assert first.shape == project.load_array("score_knn@no-pose").shape
        remove_space(project, "no-pose")


def test_relevant_only_and_honest_refusals(sky_project):
    with Project.open(sky_project, writable=True) as project:
        ids = project.load_array("test_ids")
        project.set_labels([(i, 5 if n < 4 else 1, ...) for n, i in enumerate(ids[:20])])
    result = run("guidance", "relevant", "--project", sky_project, "-q")
    assert result.exit_code == 0, result.output
    assert "Added feature space 'relevant' (relevant, leace" in result.output
    refused = run("guidance", "add", "--project", sky_project, "--nuisance", "sky_tint", "--method", "redpanda")
    assert refused.exit_code != 0 and "'redpanda' is not one of 'leace', 'nonlinear'" in refused.output
    again = run("guidance", "add", "--project", sky_project, "--nuisance", "sky_tint")
    assert again.exit_code != 0 and "exists; remove it first" in again.output
    unknown = run("guidance", "add", "--project", sky_project, "--nuisance", "colour", "--name", "x")
    assert unknown.exit_code != 0 and "neither a metadata column" in unknown.output


def test_the_nonlinear_head_makes_a_space_like_leace(sky_project, sky_dir):
    pytest.importorskip("torch")
    result = run("guidance", "add", "--project", sky_project, "--nuisance", "sky_tint", "--method", "nonlinear",
                 "--name", "head", "-q")
    assert result.exit_code == 0, result.output
    assert "Added feature space 'head' (nuisance, nonlinear, 128 dimension(s), fitted on 306 items" in result.output
    with Project.open(sky_project) as project:
        spec = spaces(project)["head"]
        ids = project.load_array("test_ids")
        assert spec["method"] == "nonlinear" and project.layout.guidance_model("head").exists()
        assert np.isfinite(project.load_array("score_knn@head")[ids]).all()
    data = json.loads(run("evaluate", "guidance", "--project", sky_project, "--truth", sky_dir / "truth.csv",
                          "--nuisance", "sky_tint", "--json").output)
    raw, head = data["spaces"]["raw"], data["spaces"]["head"]
    assert list(data["spaces"]) == ["raw", SPACE, "head"]
    assert head["probe_linear"] <= head["probe_chance"] + 0.01  # measured: at chance (raw 0.99, chance 0.98)
    assert head["nuisance_outliers_top50"] == 0 < raw["nuisance_outliers_top50"]
    assert head["auroc"] >= raw["auroc"] - 0.05  # measured: 0.93 against 0.97


def test_a_space_that_fails_while_scoring_leaves_nothing_behind(sky_project, monkeypatch):
    from oddscope.core.progress import Cancelled
    from oddscope.core.workflows import guidance

    def cancelled(*args, **kwargs):
        raise Cancelled()

    monkeypatch.setattr(guidance, "score_detectors", cancelled)
    with Project.open(sky_project, writable=True) as project, pytest.raises(Cancelled):
        add_space(project, "half", "sky_tint")
    with Project.open(sky_project) as project:
        assert set(spaces(project)) == {SPACE} and not project.layout.guidance_model("half").exists()


def test_a_space_gets_its_own_map_on_request_and_loses_it_with_the_space(sky_project):
    result = run("guidance", "map", "--project", sky_project, SPACE, "-q")
    assert result.exit_code == 0, result.output
    assert f"umap@{SPACE}" in result.output
    with Project.open(sky_project) as project:
        ids = project.load_array("test_ids")
        xy = project.load_array(f"umap@{SPACE}")
        assert xy.shape == (project.n_items, 2) and np.isfinite(xy[ids]).all()
        assert project.load_array("umap") is None  # the raw map (none here) is not the space's
    assert run("guidance", "map", "--project", sky_project, "nope").exit_code != 0
    assert run("guidance", "remove", "--project", sky_project, SPACE).exit_code == 0
    with Project.open(sky_project) as project:
        assert project.load_array(f"umap@{SPACE}") is None
