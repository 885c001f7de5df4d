"""The project's on-disk vocabulary: paths, array names, settings and their defaults, the metadata rule."""

import numpy as np
import pytest

from oddscope.core.models.clustering import CLUSTERERS
from oddscope.core.project import layout
from oddscope.core.project.layout import ANOMALY_DETECTOR, ENCODER, RANKING, ProjectLayout
from oddscope.core.project.store import Project
from oddscope.core.project.table import detector_names, is_metadata, project_table, ranking_name


def test_every_path_lives_under_the_root(tmp_path):
    paths = ProjectLayout(tmp_path)
    assert paths.db == tmp_path / "oddscope.sqlite"
    assert paths.lock == tmp_path / "writer.lock"
    assert paths.features("enc-1234") == tmp_path / "features" / "enc-1234.npy"
    assert paths.index("enc-1234", "cosine", 150) == tmp_path / "index" / "enc-1234-cosine-150.bin"
    assert paths.array("score_knn") == tmp_path / "arrays" / "score_knn.npy"
    assert paths.map_model == tmp_path / "models" / "map.joblib"
    assert paths.skipped_report == tmp_path / "skipped.csv"
    assert paths.thumbnails == tmp_path / "thumbnails"


def test_a_folder_is_a_project_while_it_holds_the_database(tmp_path):
    root = tmp_path / "p"
    assert not ProjectLayout(root).is_project()
    with Project.create(root) as project:
        assert project.layout == ProjectLayout(root.resolve())
        assert project.layout.lock.exists()
        project.save_array("umap", np.zeros((3, 2)))
        assert project.layout.array("umap").exists()
    assert ProjectLayout(str(root)).is_project()  # the app keeps recent projects as strings
    project.layout.db.unlink()
    assert not ProjectLayout(root).is_project()


def test_an_indexed_project_holds_only_what_the_layout_names(demo_dir):
    root = demo_dir / "project"
    with Project.open(root) as project:
        paths = project.layout
        key = ENCODER.read(project)["key"]
        assert paths.features(key).exists() and paths.map_model.exists() and paths.skipped_report.exists()
        for array in (layout.TEST_IDS, layout.MAP_ARRAY, layout.score_array("knn"), *layout.CLUSTER_ARRAYS):
            assert paths.array(array).exists(), array
    named = {paths.db.name, paths.lock.name, paths.features_dir.name, paths.index_dir.name, paths.arrays_dir.name,
             paths.models_dir.name, paths.skipped_report.name}
    sqlite_sidecars = {f"{paths.db.name}-wal", f"{paths.db.name}-shm"}
    assert {p.name for p in root.iterdir()} - sqlite_sidecars <= named


def test_array_names():
    assert layout.score_array("knn") == "score_knn" and layout.detector_of("score_knn") == "knn"
    assert layout.rank_array("oddscope") == "rank_oddscope"
    assert layout.relevance_array("oddscope") == "relevance_oddscope"
    assert layout.detector_of("rank_oddscope") is None and layout.detector_of("umap") is None
    assert set(layout.CLUSTER_ARRAYS) == {f"cluster_{method}" for method in CLUSTERERS}


def test_settings_have_one_key_and_default(tmp_path):
    with Project.create(tmp_path / "p") as project:
        assert RANKING.read(project) == ranking_name(project) == "knn"
        assert ENCODER.read(project) is None and ANOMALY_DETECTOR.read(project) is None
        RANKING.write(project, "iforest")
        ANOMALY_DETECTOR.write(project, "lof")
        assert project.settings() == {"ranking": "iforest", "anomaly_detector": "lof"}  # the stored format
        assert RANKING.read(project) == ranking_name(project) == "iforest"


@pytest.fixture
def project_with_metadata(tmp_path):
    image = tmp_path / "a.png"
    image.write_bytes(b"x")
    meta = {"band": "r", "rank": 3, "score_x": 1.5, "cluster": 7, "status": "clash", "mag": 2.5}
    with Project.create(tmp_path / "p") as project:
        project.add_items([image], metas=[meta])
        project.save_array("score_knn", np.array([0.5], np.float32))
        project.save_array("cluster_kmeans", np.array([0], np.int32))
        yield project


def test_one_rule_tells_metadata_from_computed_columns(project_with_metadata):
    table = project_table(project_with_metadata)
    assert detector_names(project_with_metadata) == ["knn"]
    metadata = [c for c in table.columns if is_metadata(c)]
    # metadata named like a computed column is kept under meta_<name>; a key named like a store column is dropped
    assert sorted(metadata) == ["band", "mag", "meta_cluster", "meta_rank", "meta_score_x"]
    assert table["meta_rank"].iloc[0] == 3 and table["rank"].iloc[0] == 1
    for computed in ("path", "status", "rank", "anomaly_score", "score_knn", "cluster_kmeans", "cluster", "tags",
                     "label_score", "umap_x", "predicted_relevance", "reason", "role"):
        assert not is_metadata(computed), computed
