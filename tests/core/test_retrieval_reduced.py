"""Similar items at survey scale: above a memory budget the neighbour index holds PCA-reduced features, is saved
with its reducer and reused; an analysis's reduced kNN index (``--knn-pca``) is kept and reused the same way."""
import numpy as np
import pytest
from click.testing import CliRunner
from test_knn_reduced import clustered_features, recall

from oddscope.core.cli import main
from oddscope.core.models.knn import KnnIndex, brute_force_knn
from oddscope.core.project.features import FeatureStore
from oddscope.core.project.store import Project
from oddscope.core.workflows import neighbour_index
from oddscope.core.workflows.retrieval import Neighbours, build_neighbour_index, has_neighbour_index
from oddscope.core.workflows.scoring import score_detectors

K = 10


def feature_project(folder, X) -> Project:
    """A project whose items 0..n-1 all have the features ``X`` (key "k") and were analysed."""
    n, dim = X.shape
    project = Project.create(folder / "p")
    project.add_items([folder / f"{i}.png" for i in range(n)])
    store = FeatureStore(project.root / "features" / "k.npy", dim)
    store.open(n)
    store.write_rows(np.arange(n), X)
    project.mark_features_done("k", np.arange(n))
    project.set_setting("encoder", {"key": "k"})
    project.save_array("test_ids", np.arange(n))
    return project


@pytest.fixture
def small_budget(monkeypatch):
    """Every full-width index of these tests exceeds the budget; the reduction keeps 64 of 256 dimensions."""
    monkeypatch.setattr(neighbour_index, "FULL_INDEX_MAX_BYTES", 1000)
    monkeypatch.setattr(neighbour_index, "REDUCED_DIMS", 64)
    monkeypatch.setattr(neighbour_index, "REDUCER_FIT_ROWS", 800)
    monkeypatch.setattr(neighbour_index, "BLOCK_ROWS", 500)


def no_builds(monkeypatch):
    def refuse(*_args, **_kwargs):
        raise AssertionError("an index was built instead of loaded")

    monkeypatch.setattr(KnnIndex, "build", refuse)
    monkeypatch.setattr(KnnIndex, "build_blocks", refuse)


def test_above_the_budget_a_reduced_index_is_built_block_by_block_saved_and_reused(tmp_path, small_budget,
                                                                                     monkeypatch):
    X = clustered_features(n=2000)
    read = []
    original_read = Neighbours._read
    monkeypatch.setattr(Neighbours, "_read", lambda self, rows: read.append(len(rows)) or original_read(self, rows))
    with feature_project(tmp_path, X) as project:
        assert not has_neighbour_index(project.root)
        first = Neighbours(project).of_item(5, k=K)
        assert first.attrs["approximate"] == "PCA to 64 dimensions"
        assert max(read) <= 800  # a fit sample, then blocks: never the whole matrix
        path = project.layout.index("k", "cosine", 2000)
        assert path.exists() and path.with_name(path.name + ".reducer.joblib").exists()
        assert has_neighbour_index(project.root) and not has_neighbour_index(project.root, "l2")

        no_builds(monkeypatch)
        again = Neighbours(project)
        assert again.approximate() == "PCA to 64 dimensions" and again.index().index.dim == 64
        assert again.of_item(5, k=K).equals(first)
        nearest = again.of_vector(X[5], k=1)
        assert nearest["item_id"].tolist() == [5] and nearest["distance"].iloc[0] < 1e-4


def test_the_reduced_search_finds_the_exact_neighbours(tmp_path, small_budget):
    """recall@10 against exact cosine neighbours of the full features (clustered, decaying spectrum, 256 -> 64
    dimensions); the distances stay cosine distances."""
    X = clustered_features(n=2000)
    rows = np.arange(0, 2000, 10)
    truth, exact = brute_force_knn(X, X[rows], K + 1, "cosine")  # the first is the item itself
    with feature_project(tmp_path, X) as project:
        neighbours = Neighbours(project)
        found = [neighbours.of_item(int(r), k=K) for r in rows]
    assert recall([f["item_id"].to_numpy() for f in found], truth[:, 1:]) > 0.9  # 0.96 when written
    # cosine distances, a little smaller than the exact ones (the dropped components' share)
    tenth, exact_tenth = np.median([f["distance"].iloc[-1] for f in found]), np.median(exact[:, -1])
    assert 0.75 * exact_tenth < tenth <= exact_tenth


def test_a_knn_pca_analysis_keeps_its_reduced_index_for_the_neighbour_searches(tmp_path, monkeypatch):
    X = clustered_features(n=600)
    with feature_project(tmp_path, X) as project:
        score_detectors(project, {"knn": {"k": 5, "pca": 32}}, X, X, np.arange(600), "k", "unsupervised")
        no_builds(monkeypatch)
        neighbours = Neighbours(project)
        hits = neighbours.of_item(3, k=K)
        assert neighbours.approximate() == "PCA to 32 dimensions"
        truth, _ = brute_force_knn(X, X[[3]], K + 1, "cosine")
        assert len(set(hits["item_id"]) & set(truth[0, 1:])) >= 8
        nearest = neighbours.of_vector(X[3], k=2)
        assert nearest["item_id"].iloc[0] == 3 and nearest["distance"].iloc[0] < 1e-4
        assert nearest["item_id"].iloc[1] == hits["item_id"].iloc[0]
    result = CliRunner().invoke(main, ["neighbours", "--project", str(tmp_path / "p"), str(tmp_path / "3.png"),
                                       "-k", "3"], catch_exceptions=False)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 0 and len(lines) == 4
    assert lines[0].startswith("Approximate search (PCA to 32 dimensions)")


def test_build_neighbour_index_saves_once_and_reports_progress(tmp_path, small_budget):
    """What the app's child process runs: the project opened read-only, the index built and saved."""
    X = clustered_features(n=1200)
    feature_project(tmp_path, X).close()
    stages = []
    assert build_neighbour_index(tmp_path / "p", "l2", progress=lambda *a: stages.append(a)) == "PCA to 64 dimensions"
    assert has_neighbour_index(tmp_path / "p", "l2") and stages[-1][1:] == (1200, 1200)
    assert [s for s, *_ in stages[:2]] == ["Fitting PCA to 64 dimensions on a sample"] * 2
    reported = len(stages)
    assert build_neighbour_index(tmp_path / "p", "l2", progress=lambda *a: stages.append(a)) is not None
    assert len(stages) == reported  # the second call built nothing
