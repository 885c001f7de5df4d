"""The registries list every method without importing it, and build each one by name."""
import subprocess
import sys
import textwrap

import pytest

from oddscope.core.models.registry import (
    DEFAULT_DETECTORS,
    DEFAULT_ENCODER,
    DETECTORS,
    ENCODERS,
    METRICS,
    RANKERS,
    EncoderError,
    make_detector,
    make_ranker,
)

REGISTRIES = (ENCODERS, DETECTORS, RANKERS, METRICS)


def test_listing_the_registries_imports_no_torch_and_no_sklearn():
    """The app's dialogs list names on the GUI thread: importing torch there would freeze the window."""
    script = textwrap.dedent("""
        import sys
        from oddscope.core.models import registry
        for reg in (registry.ENCODERS, registry.DETECTORS, registry.RANKERS, registry.METRICS):
            assert list(reg) and reg.descriptions() and reg.standard() and reg.default
            for name, entry in reg.items():
                assert entry.description and entry.label and dict(entry.defaults) is not None
        assert registry.ENCODERS.entry("timm:resnet18").name == "timm:"
        heavy = sorted(m for m in ("torch", "sklearn", "scipy", "hnswlib", "timm", "open_clip") if m in sys.modules)
        models = sorted(m for m in sys.modules if m.startswith("oddscope.core.models."))
        print(heavy, models)
        sys.exit(1 if heavy or models != ["oddscope.core.models.registry"] else 0)
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("registry", REGISTRIES, ids=lambda r: r.kind)
def test_every_loader_names_an_existing_implementation(registry):
    for entry in registry.values():
        if entry.loader is not None:
            assert callable(entry.load())


def test_defaults_and_standard_sets():
    assert DEFAULT_ENCODER == "efficientnet-lite0" and ENCODERS.standard() == tuple(
        f"efficientnet-lite{k}" for k in range(3))
    assert DEFAULT_DETECTORS == tuple(name for name in DETECTORS if name != "knn-l1")
    assert list(METRICS) == ["cosine", "l2", "l1"] and METRICS.default == "cosine"
    assert list(RANKERS) == ["plain", "neighbourscore", "protege", "oddscope", "aad", "pineforest"]
    assert RANKERS.standard() == ("plain", "neighbourscore", "protege", "oddscope")  # the app's; SNAD's are peers


def test_entries_build_with_their_defaults_and_overrides_win():
    detector = make_detector("knn-ls")
    assert (detector.name, detector.k, detector.hubness, detector.metric) == ("knn-ls", 50, "local_scaling", "cosine")
    assert make_detector("knn-ls", k=7).k == 7
    assert make_detector("knn-l1").metric == "l1"
    assert make_ranker("protege", n_components=3).n_components == 3


def test_families_match_by_prefix_and_unknown_names_fail_clearly():
    assert ENCODERS.entry("clip:ViT-B-32/laion2b_s34b_b79k").name == "clip:"
    assert ENCODERS.entry("efficientnet-lite1").defaults["arch"] == "tf_efficientnet_lite1"
    for spec in ("timm:", "resnet-9000"):
        with pytest.raises(EncoderError, match="unknown encoder"):
            ENCODERS.entry(spec)
    with pytest.raises(ValueError, match="unknown metric 'cos'"):
        METRICS.entry("cos")
    with pytest.raises(TypeError, match="setting"):
        METRICS["l2"].load()
