"""`oddscope index --cluster` on a local Ray gives what one process gives, resumes after a kill, and says how
to install Ray when it is missing (issue 12)."""
import sys
from functools import partial

import numpy as np
import pytest
from click.testing import CliRunner

from oddscope.app.cli import main
from oddscope.core.data.demo import make_demo
from oddscope.core.data.science import ScienceSteps
from oddscope.core.models.encoders import load_encoder
from oddscope.core.models.registry import DEFAULT_ENCODER, make_detector
from oddscope.core.progress import Cancelled, Progress, split_note
from oddscope.core.project.features import encoder_key, load_features
from oddscope.core.project.layout import score_array
from oddscope.core.project.store import Project
from oddscope.core.workflows.cluster.extraction import extract_features_on_cluster
from oddscope.core.workflows.cluster.scoring import score_on_cluster
from oddscope.core.workflows.extraction import extract_features
from oddscope.core.workflows.pipeline import IndexOptions, add_source, index_images

N_IMAGES = 40
SHARD_SIZE = 8  # 41 items (one unreadable): 6 shards
STOP_AFTER = 2  # shards copied in before the simulated kill


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Demo cutouts and one truncated PNG that only decoding finds unreadable."""
    root = tmp_path_factory.mktemp("cluster")
    make_demo(root, n_images=N_IMAGES, seed=3)
    png = next((root / "images").glob("*.png")).read_bytes()
    (root / "images" / "broken.png").write_bytes(png[: len(png) // 2])
    return root / "images"


@pytest.fixture(scope="module")
def single(images, tmp_path_factory):
    """The project one process indexes from ``images``."""
    root = tmp_path_factory.mktemp("single") / "project"
    with Project.create(root) as project:
        index_images(project, images, options=IndexOptions(make_map=False, make_clusters=False))
    return root


@pytest.fixture(scope="module")
def resumed(local_ray, images, tmp_path_factory):
    """A cluster extraction stopped after ``STOP_AFTER`` shards, as a kill stops it, then run again.

    Returns the project, what the first run had done when stopped, the shard files it left, and the reports."""
    root = tmp_path_factory.mktemp("resumed") / "project"
    encoder = load_encoder(DEFAULT_ENCODER)
    run = partial(extract_features_on_cluster, encoder=encoder, load_encoder=partial(load_encoder, DEFAULT_ENCODER),
                  shard_size=SHARD_SIZE)
    with Project.create(root) as project:
        add_source(project, images)

        def stop(stage, done, total):
            if split_note(stage)[1].startswith(f"{STOP_AFTER}/"):
                progress.cancel()

        progress = Progress(stop)
        with pytest.raises(Cancelled):
            run(project, progress=progress)
        key = encoder_key(encoder)
        done = len(project.features_done(key))
        left = sorted(p.name for p in project.layout.feature_shards(key).glob("*.npz"))
        stopped = {"done": done, "handled": done + len(project.skipped()), "left": left}
        report = run(project)
    return {"root": root, "report": report, "key": key, **stopped}


def _features_by_path(root, key):
    with Project.open(root) as project:
        ids = project.features_done(key)
        paths = project.resolve_all(project.items(with_meta=False).loc[ids, "path"])
        return dict(zip(paths, load_features(project, key, ids))), dict(project.skipped().itertuples(index=False))


def test_a_stopped_cluster_run_resumes_computing_only_the_missing_shards(resumed):
    report, n_items = resumed["report"], N_IMAGES + 1
    assert resumed["handled"] == STOP_AFTER * SHARD_SIZE  # the shards copied in before the stop
    assert report.reused == resumed["done"]  # their features are kept, not computed again
    pending = n_items - resumed["handled"]
    assert report.shards == -(-n_items // SHARD_SIZE) - STOP_AFTER  # the copied shards are not pending any more
    assert report.shards_recovered == len(resumed["left"])  # finished but not copied: read, not computed again
    assert report.computed + report.recovered + len(report.skipped) == pending
    assert (report.startup_seconds > 0) == (report.computed > 0)  # the start-up, reported apart
    assert report.startup_items <= report.computed
    with Project.open(resumed["root"]) as project:
        assert not project.layout.feature_shards(resumed["key"]).exists()
        assert len(project.features_done(resumed["key"])) == N_IMAGES


def test_cluster_features_equal_the_single_process_run(resumed, single):
    here, here_skipped = _features_by_path(single, resumed["key"])
    there, there_skipped = _features_by_path(resumed["root"], resumed["key"])
    assert there.keys() == here.keys() and len(here) == N_IMAGES
    for path, a in here.items():
        b = there[path]
        assert a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) > 0.999, path
    assert there_skipped == here_skipped and len(here_skipped) == 1  # the broken file, with the same reason


def test_the_cluster_runs_the_science_steps_as_one_process_does(local_ray, images, tmp_path):
    """Decode tasks get the steps with the encoder's resize: the same pixels, the same features and key."""
    steps, encoder = ScienceSteps.parse("background,crop=0.5"), load_encoder(DEFAULT_ENCODER)
    with Project.create(tmp_path / "single") as project:
        add_source(project, images)
        extract_features(project, encoder, num_workers=0, steps=steps)
    with Project.create(tmp_path / "cluster") as project:
        add_source(project, images)
        extract_features_on_cluster(project, encoder, partial(load_encoder, DEFAULT_ENCODER), shard_size=SHARD_SIZE,
                                    steps=steps)
    key = encoder_key(encoder, steps)
    (here, _), (there, _) = (_features_by_path(tmp_path / name, key) for name in ("single", "cluster"))
    assert there.keys() == here.keys() and len(here) == N_IMAGES and key != encoder_key(encoder)
    for path, a in here.items():
        assert a @ there[path] / (np.linalg.norm(a) * np.linalg.norm(there[path])) > 0.999, path


@pytest.mark.parametrize("name", ["knn", "knn-l2", "knn-ls", "iforest"])
def test_cluster_scores_and_ranking_are_identical_for_the_same_features(local_ray, single, name):
    with Project.open(single) as project:
        X = load_features(project, project.get_setting("encoder")["key"])
    detector = make_detector(name).fit(X)
    for exclude_self in (True, False):
        here, there = detector.score(X, exclude_self), score_on_cluster(detector, X, exclude_self)
        np.testing.assert_array_equal(there, here)
        np.testing.assert_array_equal(np.argsort(-there, kind="stable"), np.argsort(-here, kind="stable"))


def test_cli_index_on_the_cluster_scores_the_project(local_ray, resumed):
    """On a project whose features are done, ``--cluster`` joins the running Ray and scores on it."""
    result = CliRunner().invoke(main, ["index", "--project", str(resumed["root"]), "--cluster", "auto", "--no-map",
                                       "--no-clusters", "--detectors", "knn,iforest", "-q"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Cluster   0 shard(s)" in result.output
    with Project.open(resumed["root"]) as project:
        assert np.isfinite(project.load_array(score_array("knn"))).sum() == N_IMAGES
    assert local_ray.is_initialized()  # a Ray the command did not start is left running


def test_without_ray_the_flag_says_how_to_install_it(tmp_path, monkeypatch):
    for module in ("ray", "ray.data"):
        monkeypatch.setitem(sys.modules, module, None)  # `import ray` now raises ImportError
    result = CliRunner().invoke(main, ["index", str(tmp_path), "--project", str(tmp_path / "p"), "--cluster", "local"])
    assert result.exit_code == 1
    assert "pip install 'oddscope[cluster]'" in result.output
    assert not (tmp_path / "p").exists()  # refused before any work


def test_an_unknown_cluster_address_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(main, ["index", str(tmp_path), "--project", str(tmp_path / "p"), "--cluster", "mars"])
    assert result.exit_code == 2 and "local, auto or ray://HOST:PORT" in result.output
