"""The OpenVINO runtime: the same features as eager torch, exported once, usable without torch."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data
from without_torch import python_without_torch

from oddscope.core.models.encoders import EncoderError, load_encoder, openvino_runtime
from oddscope.core.models.encoders.openvino_runtime import OpenVinoEncoder


@pytest.fixture(scope="module")
def photos():
    return [data.chelsea(), data.coffee(), data.astronaut(), data.rocket(), data.camera()[..., None].repeat(3, 2)]


@pytest.fixture(scope="module")
def default():
    """What ``index`` gets on a CPU machine by default (exported into this session's cache)."""
    return load_encoder(device="cpu")


def _batch(encoder, images):
    return np.stack([encoder.preprocess(image) for image in images])


def _cosine(a, b):
    return np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_default_runtime_on_cpu_is_openvino_with_the_eager_features(default, photos):
    assert isinstance(default, OpenVinoEncoder)
    eager = load_encoder(device="cpu", fast=False, runtime="torch")
    batch = _batch(default, photos)
    for rows in (slice(None), slice(0, 1), slice(1, 4)):  # odd and even batch sizes
        assert _cosine(default.encode(batch[rows]), eager.encode(batch[rows])).min() > 0.999
    record = json.loads(json.dumps(default.describe()))
    assert record["weights"] == eager.weights and record["dim"] == eager.dim == 1280
    assert record["runtime"].startswith("openvino ") and "cosine to eager" in record["export"]
    assert default.encode(batch[:0]).shape == (0, 1280)
    with pytest.raises(ValueError, match="uint8"):
        default.encode(batch.astype(np.float32))


def test_the_export_is_made_once_and_reused(default, monkeypatch):
    def no_export(encoder, root=None):
        raise AssertionError("exported again")

    monkeypatch.setattr(openvino_runtime, "export", no_export)
    again = load_encoder(device="cpu")
    assert isinstance(again, OpenVinoEncoder) and again.folder == default.folder
    assert default.folder.parent == Path(os.environ["ODDSCOPE_CACHE"]) / "openvino"


def test_an_encoder_keeps_to_the_threads_a_ray_actor_is_given(default, monkeypatch, photos):
    from oddscope.core.workflows.cluster.extraction import ActorPlan, actor_options

    threads = actor_options(ActorPlan(count=3, num_gpus=0, threads=4))["runtime_env"]["env_vars"]
    assert threads == {"OMP_NUM_THREADS": "4", openvino_runtime.THREADS_ENV: "4"}  # torch's and OpenVINO's
    monkeypatch.setenv(openvino_runtime.THREADS_ENV, "1")
    limited = OpenVinoEncoder(default.folder)
    assert limited._compiled.get_property("INFERENCE_NUM_THREADS") == 1  # not every core of the node
    assert "1 threads" in limited.describe()["fast_path"]
    batch = _batch(default, photos[:3])
    assert _cosine(limited.encode(batch), default.encode(batch)).min() > 0.9999


def test_a_broken_export_is_rebuilt(tmp_path, monkeypatch, photos):
    monkeypatch.setenv("ODDSCOPE_CACHE", str(tmp_path))
    first = load_encoder(device="cpu")
    (first.folder / "model.bin").write_bytes(b"truncated")
    rebuilt = load_encoder(device="cpu")
    assert isinstance(rebuilt, OpenVinoEncoder) and rebuilt.folder == first.folder
    batch = _batch(rebuilt, photos[:2])
    eager = load_encoder(device="cpu", fast=False, runtime="torch")
    assert _cosine(rebuilt.encode(batch), eager.encode(batch)).min() > 0.999


def test_features_that_disagree_are_never_used(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("ODDSCOPE_CACHE", str(tmp_path))
    monkeypatch.setattr(openvino_runtime, "MIN_COSINE", 1.01)  # no export can pass
    with caplog.at_level(logging.WARNING):
        encoder = load_encoder(device="cpu")
    assert not isinstance(encoder, OpenVinoEncoder) and "differ from the eager model" in caplog.text
    assert not list((tmp_path / "openvino").iterdir())  # nothing half-made left behind
    with pytest.raises(EncoderError, match="differ from the eager model"):
        load_encoder(device="cpu", runtime="openvino")


def test_runtime_choices_are_checked():
    with pytest.raises(EncoderError, match="unknown runtime"):
        load_encoder(runtime="tensorrt")
    assert not isinstance(load_encoder(device="cpu", runtime="torch"), OpenVinoEncoder)


def test_a_timm_weights_file_exports_too(tmp_path, photos):
    import timm

    torch.manual_seed(1)
    model = timm.create_model("test_efficientnet", num_classes=0).eval()
    torch.save(model.state_dict(), tmp_path / "tiny.pth")
    encoder = load_encoder("timm:test_efficientnet", weights=str(tmp_path / "tiny.pth"), device="cpu")
    assert isinstance(encoder, OpenVinoEncoder)
    batch = _batch(encoder, photos)
    reference = load_encoder("timm:test_efficientnet", weights=str(tmp_path / "tiny.pth"), device="cpu",
                             fast=False, runtime="torch")
    assert _cosine(encoder.encode(batch), reference.encode(batch)).min() > 0.999


_WITHOUT_TORCH = """
import numpy as np
from oddscope.core.models.encoders import EncoderError, load_encoder
encoder = load_encoder()
print(type(encoder).__name__, encoder.encode(encoder.preprocess(np.zeros((50, 80, 3), "uint8"))[None]).shape)
try:
    load_encoder("efficientnet-lite1")
except EncoderError as err:
    print("lite1:", err)
"""


def test_the_default_encoder_loads_without_importing_torch_on_a_cpu_machine(default):
    """torch is installed here, but an OpenVINO start does not pay its 1.6 s import (a Ray actor's start)."""
    code = ("import sys; from oddscope.core.models.encoders import load_encoder; encoder = load_encoder(); "
            "print(type(encoder).__name__, 'torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["OpenVinoEncoder", "False"]


def test_an_exported_encoder_runs_without_torch(default):
    result = python_without_torch(_WITHOUT_TORCH)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "OpenVinoEncoder (1, 1280)"
    assert lines[1].startswith("lite1:") and "needs torch" in lines[1]
