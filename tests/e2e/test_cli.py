"""The `oddscope` command end to end on the small demo project."""

import csv
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hostile import FakeEncoder
from PIL import Image
from scipy.stats import kendalltau

from oddscope.app.cli import main
from oddscope.core.cli import common as cli_common
from oddscope.core.models import encoders
from oddscope.core.project.store import Project

QUICK = ("--no-map", "--no-clusters", "-q", "--detectors", "knn,mahalanobis", "--workers", "0")


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result


def test_help_everywhere():
    for args in ([], ["index"], ["export"], ["labels", "import"], ["neighbours"], ["evaluate"], ["demo"], ["open"]):
        result = run(*args, "--help")
        assert result.exit_code == 0 and "Usage:" in result.output


def test_export_has_every_column_sorted_by_rank(demo_dir, tmp_path):
    project = demo_dir / "project"
    for out in (tmp_path / "ranked.csv", tmp_path / "ranked.parquet"):
        assert run("export", "--project", project, "--out", out).exit_code == 0
    df = pd.read_csv(tmp_path / "ranked.csv")
    pq = pd.read_parquet(tmp_path / "ranked.parquet")
    assert len(df) == len(pq) == 150
    for column in ("path", "rank", "anomaly_score", "score_knn", "score_iforest", "score_lof", "score_mahalanobis",
                   "score_autoencoder", "score_knn-ls", "umap_x", "umap_y", "cluster", "label_score", "tags"):
        assert column in df.columns, column
    assert list(df["rank"]) == list(range(1, 151))
    assert np.all(np.diff(df["anomaly_score"]) <= 0)
    assert df["umap_x"].notna().all() and df["path"].map(lambda p: p.endswith(".png")).all()


def test_evaluate_prints_metrics_per_detector(demo_dir):
    truth = demo_dir / "truth.csv"
    result = run("evaluate", "--project", demo_dir / "project", "--truth", truth, "--json")
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["n_items"] == 150 and data["n_anomalies"] > 0
    knn = data["detectors"]["knn"]
    assert {"auroc", "average_precision", "recall@10", "recall@50", "recall@100"} <= set(knn)
    # 6 anomalies among 150: random scores give AUROC 0.5 +- 0.12 (sd), so 0.8 is 2.5 sd above chance
    # (p ~ 0.006); the real figure is about 0.90.  Average precision by chance is 6/150 = 0.04.
    assert knn["auroc"] > 0.8 and knn["average_precision"] > 0.2, knn
    table = run("evaluate", "--project", demo_dir / "project", "--truth", truth).output
    assert "knn" in table and "iforest" in table and "AUROC" in table.upper()


def test_neighbours_of_an_image(demo_dir):
    first = sorted((demo_dir / "images").iterdir())[0]
    result = run("neighbours", "--project", demo_dir / "project", first, "-k", "5", "--metric", "l2")
    lines = result.output.strip().splitlines()
    assert result.exit_code == 0 and len(lines) == 5
    assert str(first) not in result.output  # itself excluded
    distances = [float(line.split()[1]) for line in lines]
    assert distances == sorted(distances)


def test_labels_import_export_round_trip(demo_project, tmp_path):
    images = sorted((demo_project.parent / "images").iterdir())
    labels_in = tmp_path / "in.csv"
    labels_in.write_text(f"path,score,tags\n{images[0]},5,ring\n{images[1]},0,trail;artefact\n/nope.png,3,\n")
    result = run("labels", "import", "--project", demo_project, labels_in)
    assert result.exit_code == 1 and "Applied 2 label(s)" in result.output and "line 4" in result.output  # a bad row
    out = tmp_path / "out.csv"
    assert run("labels", "export", "--project", demo_project, out).exit_code == 0
    rows = {r["path"]: r for r in csv.DictReader(open(out))}
    assert rows[str(images[0])]["score"] == "5" and rows[str(images[1])]["tags"] == "trail;artefact"
    run("export", "--project", demo_project, "--out", tmp_path / "r.csv")
    df = pd.read_csv(tmp_path / "r.csv").set_index("path")
    assert df.loc[str(images[0]), "label_score"] == 5 and df.loc[str(images[0]), "tags"] == "ring"


def test_reindex_adds_only_new_images_and_reports_bad_files(demo_project):
    images = demo_project.parent / "images"
    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(images / "new_one.png")
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    result = run("index", images, "--project", demo_project, "--no-map", "--no-clusters", "-q",
                 "--detectors", "knn")
    assert result.exit_code == 0, result.output
    assert "features computed 1, reused 150" in result.output
    assert "broken.png" in result.output and "Skipped   1 file(s)" in result.output
    skipped = pd.read_csv(demo_project / "skipped.csv")
    assert list(skipped["path"].str.endswith("broken.png")) == [True]


def test_second_writer_is_refused_with_a_clear_message(demo_project):
    with Project.open(demo_project, writable=True):
        result = run("labels", "import", "--project", demo_project, demo_project.parent / "truth.csv")
    assert result.exit_code == 1 and "open for writing by pid" in result.output


def test_moved_project_still_opens(demo_project, tmp_path):
    moved = tmp_path / "elsewhere"
    shutil.move(str(demo_project.parent), moved)
    result = run("export", "--project", moved / "project", "--out", tmp_path / "m.csv")
    assert result.exit_code == 0
    df = pd.read_csv(tmp_path / "m.csv")
    assert df["path"].str.startswith(str(moved)).all()


def test_evaluate_active_reports_every_method(demo_dir):
    result = run("evaluate", "active", "--project", demo_dir / "project", "--truth", demo_dir / "truth.csv",
                 "--rounds", "2", "--seeds", "1", "--batch", "5", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    methods = report["methods"]
    assert set(methods) | set(report["unavailable"]) == {"plain", "neighbourscore", "protege", "oddscope", "aad",
                                                         "pineforest"}
    assert set(methods) >= {"plain", "neighbourscore", "protege", "oddscope"}
    assert all(len(m["found_per_round"]) == 2 for m in methods.values())


def test_rank_with_an_active_method_uses_the_labels(demo_project, tmp_path):
    with Project.open(demo_project, writable=True) as project:
        top = project.load_array("test_ids")[:3]
        for item_id in top:
            project.set_label(item_id, score=0)  # "boring": must sink
    run("export", "--project", demo_project, "--out", tmp_path / "plain.csv")
    plain = pd.read_csv(tmp_path / "plain.csv")
    result = run("rank", "--project", demo_project, "oddscope")
    assert result.exit_code == 0 and "Fitted 'oddscope' on 3 label(s)" in result.output
    run("export", "--project", demo_project, "--out", tmp_path / "r.csv")
    df = pd.read_csv(tmp_path / "r.csv")
    assert "predicted_relevance" in df.columns
    ranks = df.set_index("item_id").loc[top, "rank"]
    assert (ranks > 10).all()
    # the whole collection is re-ranked, not only the labelled items: the unlabelled change order too
    # (a ranker that moved only the labelled items would leave their order alone: Kendall tau exactly 1;
    # measured 0.96)
    unlabelled = df[~df["item_id"].isin(top)].set_index("item_id")
    before = plain.set_index("item_id").loc[unlabelled.index, "rank"]
    assert kendalltau(before, unlabelled["rank"]).statistic < 0.99


@pytest.fixture
def fake_encoder(monkeypatch):
    """``oddscope index`` and ``demo`` encode with the fast test double instead of the network."""
    monkeypatch.setattr(encoders, "load_encoder", lambda *args, **kwargs: FakeEncoder())


def _survey(folder, n_normal, n_odd, seed):
    """Grey noise images, and ``n_odd`` with a bright square: odd ones out for any encoder."""
    folder.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(n_normal + n_odd):
        pixels = rng.integers(90, 110, (16, 16, 3), dtype=np.uint8)
        if i >= n_normal:
            pixels[4:12, 4:12] = 250
        Image.fromarray(pixels).save(folder / f"{'odd' if i >= n_normal else 'sky'}_{seed}_{i:03d}.png")
    return folder


def test_index_with_a_reference_set_scores_only_the_test_images(fake_encoder, tmp_path):
    reference = _survey(tmp_path / "reference", 30, 0, seed=1)
    test = _survey(tmp_path / "test", 20, 4, seed=2)
    result = run("index", test, "--reference", reference, "--project", tmp_path / "p", *QUICK)
    assert result.exit_code == 0, result.output
    assert "Mode      reference" in result.output and "Items     54 (54 new)" in result.output
    run("export", "--project", tmp_path / "p", "--out", tmp_path / "r.csv")
    df = pd.read_csv(tmp_path / "r.csv")
    ranked = df[df["rank"] > 0]
    assert sorted(ranked["path"].map(lambda p: p.split("/")[-2])) == ["test"] * 24  # references are not ranked
    # the 4 odd images first: by chance 1 in C(24, 4) = 10626
    assert ranked.sort_values("rank")["path"].head(4).str.contains("odd_").all()
    with Project.open(tmp_path / "p") as project:
        runs = project.latest_runs("detector")
    assert set(runs) == {"knn", "mahalanobis"} and all(r["params"]["mode"] == "reference" for r in runs.values())


@pytest.mark.parametrize("stage, unit", [("features", "img"), ("map: layout", "epoch"), ("some new stage", "item")])
def test_progress_bars_name_what_they_count(stage, unit, capsys):
    """A slow stage prints its rate as seconds per unit ("5.00s/item]"), never the unitless "s/]"."""
    bars = cli_common.Bars()
    bars(stage, 0, 3)
    bars.bar.start_t -= 10  # as if the first two steps took 10 s
    bars(stage, 2, 3)
    bars.close()
    text = capsys.readouterr().err
    assert "2/3 [" in text and f"s/{unit}]" in text and "s/]" not in text


def test_a_stage_without_a_total_shows_its_elapsed_time_only(capsys):
    bars = cli_common.Bars()
    bars("map: umap", 0, 0)
    bars.bar.start_t -= 17
    bars.close()
    assert capsys.readouterr().err.strip().split("\r")[-1] == "map: umap: [00:17]"


def test_ctrl_c_during_index_keeps_finished_batches_and_the_rerun_resumes(fake_encoder, tmp_path, monkeypatch):
    images = _survey(tmp_path / "images", 60, 0, seed=3)
    bars = cli_common.Bars.__call__

    def ctrl_c_after_two_batches(self, stage, done, total):
        bars(self, stage, done, total)
        if stage == "features" and done >= 32:
            raise KeyboardInterrupt  # what Ctrl+C raises in the main thread, here from the progress callback

    monkeypatch.setattr(cli_common.Bars, "__call__", ctrl_c_after_two_batches)
    result = run("index", images, "--project", tmp_path / "p", "--batch-size", "16", *QUICK)
    assert result.exit_code == 130 and "Interrupted. Finished batches are saved" in result.output
    monkeypatch.undo()
    monkeypatch.setattr(encoders, "load_encoder", lambda *args, **kwargs: FakeEncoder())
    result = run("index", images, "--project", tmp_path / "p", "--batch-size", "16", *QUICK)
    assert result.exit_code == 0, result.output
    assert "features computed 28, reused 32" in result.output


def test_info_describes_the_project(demo_dir):
    result = run("info", "--project", demo_dir / "project")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "Items     150: 150 ok" in lines
    assert any(line.startswith("Encoder   efficientnet-lite0") for line in lines)
    assert any(line.startswith("Runtime   openvino ") for line in lines)  # the default on a CPU machine
    assert "Preprocess none" in lines  # the default: no science steps before the encoder
    assert {line.split()[1] for line in lines if line.startswith("Detector")} >= {"knn", "iforest", "autoencoder"}
    assert "Labels    0" in lines and "Ranking   knn" in lines


def test_demo_without_gui_builds_indexes_and_says_how_to_evaluate(fake_encoder, tmp_path):
    out = tmp_path / "demo"
    result = run("demo", "--out", out, "--n-images", "60", "--no-gui", "-q")
    assert result.exit_code == 0, result.output
    assert "Wrote 60 images" in result.output and "Mode      unsupervised" in result.output
    assert f"oddscope evaluate --project {out / 'project'} --truth {out / 'truth.csv'}" in result.output
    assert "and 1 normal galaxies under a rare blue sky" in result.output  # 1% of 60, after the survey
    assert len(list((out / "images").iterdir())) == 61
    with Project.open(out / "project") as project:
        items = project.items()
        assert (items["status"] == "ok").sum() == 61
        assert items["sky_tint"].tolist() == ["none"] * 60 + ["blue"]  # indexed from the manifest
