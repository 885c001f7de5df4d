"""The desktop bundle's recipe collects what the bundle needs (building it is not part of CI: packaging/build.py).

A dependency upgrade that renames OpenVINO's CPU libraries or drops a package's metadata breaks the
bundle without breaking anything else; these checks catch it here.
"""

import importlib.metadata
import importlib.util
import runpy
import sys
from pathlib import Path

import pytest

PACKAGING = Path(__file__).resolve().parents[2] / "packaging"
CONTENTS = runpy.run_path(str(PACKAGING / "contents.py"))


def test_the_bundle_leaves_torch_and_cuda_out():
    assert {"torch", "torchvision", "triton", "nvidia", "timm", "open_clip"} <= set(CONTENTS["EXCLUDES"])
    assert "from contents import" in (PACKAGING / "oddscope.spec").read_text()


@pytest.mark.parametrize("distribution", CONTENTS["METADATA"])
def test_the_metadata_read_at_run_time_is_installed(distribution):
    assert importlib.metadata.version(distribution)


@pytest.mark.parametrize("package", CONTENTS["DATA_PACKAGES"])
def test_the_data_packages_exist(package):
    assert importlib.util.find_spec(package) is not None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="library names checked on Linux")
def test_openvino_cpu_libraries_are_found_by_the_names_the_spec_keeps():
    libs = Path(importlib.util.find_spec("openvino").origin).parent / "libs"
    names = [p.name for p in libs.iterdir()]
    kept = [n for n in names if any(n.startswith(prefix) for prefix in CONTENTS["OPENVINO_LIBS"])]
    for needed in ("libopenvino.so", "libopenvino_intel_cpu_plugin.so", "libopenvino_ir_frontend.so", "libtbb"):
        assert any(n.startswith(needed) for n in kept), f"{needed} missing from {libs}"
    assert not any("gpu_plugin" in n or "onnx_frontend" in n for n in kept)  # left out on purpose


def test_every_registered_implementation_is_collected():
    """The registries import their implementations by name at run time, which PyInstaller cannot see: the spec
    collects every submodule of oddscope.core, and that list must hold each registry's modules."""
    pytest.importorskip("PyInstaller")
    from PyInstaller.utils.hooks import collect_submodules

    from oddscope.core.models import registry

    assert 'collect_submodules("oddscope.core")' in (PACKAGING / "oddscope.spec").read_text()
    collected = set(collect_submodules("oddscope.core"))
    for methods in (registry.ENCODERS, registry.DETECTORS, registry.RANKERS):
        for entry in methods.values():
            assert entry.loader.partition(":")[0] in collected, entry.name
