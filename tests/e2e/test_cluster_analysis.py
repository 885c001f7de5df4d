"""The analysis on a local Ray (issue 12): the detectors other than kNN fitted on a seeded sample and applied in
parallel blocks, UMAP fitted on a sample with the rest placed in blocks; block results equal one go."""
import numpy as np
import pytest

from oddscope.core.models.registry import make_detector
from oddscope.core.project.layout import MAP_ARRAY, TEST_IDS, score_array
from oddscope.core.project.store import Project
from oddscope.core.workflows.cluster.blocks import map_blocks, sample_rows
from oddscope.core.workflows.cluster.mapping import map_on_cluster
from oddscope.core.workflows.cluster.scoring import ClusterScoring, score_in_blocks
from oddscope.core.workflows.pipeline import IndexOptions, analyse
from oddscope.core.workflows.scoring import constructor_params

N, SAMPLE = 150, 60
SAMPLED = ["iforest", "lof", "mahalanobis", "knn-ls"]


@pytest.fixture(scope="module")
def X():
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=3.0, size=(4, 16))
    return (centres[rng.integers(0, 4, N)] + rng.normal(size=(N, 16))).astype(np.float32)


def test_blocks_cover_every_row_in_order(local_ray, X):
    def rows_block(model, X, start, stop):  # nested: Ray ships it by value (workers cannot import tests)
        return np.arange(start, stop)

    parts = map_blocks(rows_block, None, X)
    assert len(parts) == 4  # two blocks per CPU of the 2-CPU Ray
    np.testing.assert_array_equal(np.concatenate(parts), np.arange(N))


@pytest.mark.parametrize("name", SAMPLED)
def test_scoring_in_blocks_equals_scoring_in_one_go(local_ray, X, name):
    detector = make_detector(name).fit(X)
    np.testing.assert_array_equal(score_in_blocks(detector, X), detector.score(X))


@pytest.mark.parametrize("name", SAMPLED)
def test_detectors_are_fitted_on_a_seeded_sample_and_score_every_item(local_ray, X, name):
    detector = make_detector(name)
    values = ClusterScoring(fit_sample=SAMPLE)(detector, X, X, exclude_self=True)
    rows = sample_rows(N, SAMPLE)
    assert detector.n_fit_ == SAMPLE and len(rows) == SAMPLE
    alone = make_detector(name).fit(X[rows])
    expected = alone.score(X)  # the items left out score as new items against the sample
    expected[rows] = alone.score(X[rows], exclude_self=True)  # the sampled ones as fit rows, never self-neighbours
    np.testing.assert_array_equal(values, expected)


@pytest.mark.parametrize("name", SAMPLED + ["knn"])
def test_a_collection_no_larger_than_the_sample_scores_as_on_one_machine(local_ray, X, name):
    values = ClusterScoring(fit_sample=N)(make_detector(name), X, X, exclude_self=True)
    np.testing.assert_array_equal(values, make_detector(name).fit(X).score(X, exclude_self=True))


def test_the_map_is_fitted_on_a_sample_and_places_every_item(local_ray, X):
    coords, projection = map_on_cluster(X, fit_sample=SAMPLE)
    rows = sample_rows(N, SAMPLE)
    assert coords.shape == (N, 2) and np.isfinite(coords).all()
    np.testing.assert_array_equal(coords[rows], projection.embedding_)  # the sampled items keep the fit's place
    placed = np.setdiff1d(np.arange(N), rows)
    assert not np.isin(coords[placed], projection.embedding_).all(axis=1).any()  # the others were placed anew
    # a placed item lands beside the sampled items of its own cluster: its nearest sampled item on the map
    # is among its 10 nearest sampled items in feature space
    from scipy.spatial.distance import cdist

    on_map = cdist(coords[placed], coords[rows]).argmin(axis=1)
    in_features = np.argsort(cdist(X[placed], X[rows]), axis=1)[:, :10]
    assert np.mean([m in f for m, f in zip(on_map, in_features)]) > 0.8


def test_analyse_on_the_cluster_records_the_fit_sample(local_ray, demo_project):
    options = IndexOptions(cluster="auto", fit_sample=20, detectors=("knn", "iforest"), make_clusters=False)
    with Project.open(demo_project, writable=True) as project:
        analyse(project, options)
        ids = project.load_array(TEST_IDS)
        assert len(ids) > 20
        assert np.isfinite(project.load_array(MAP_ARRAY)[ids]).all()
        assert np.isfinite(project.load_array(score_array("iforest"))[ids]).all()
        detectors, maps = project.latest_runs("detector"), project.latest_runs("map")
        assert detectors["iforest"]["params"]["fit_rows"] == 20
        # the run's facts are not constructor arguments: guided spaces rebuild the detector from its params
        assert make_detector("iforest", **constructor_params(detectors["iforest"]["params"])).params() == \
            make_detector("iforest").params()
        assert "fit_rows" not in detectors["knn"]["params"]  # the kNN index holds every item
        assert maps["umap"]["params"]["fit_rows"] == 20
