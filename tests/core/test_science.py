"""Science preprocessing before the encoder: each step on small synthetic arrays, the spec's string form."""

import pickle

import numpy as np
import pytest
from hostile import FakeEncoder
from PIL import Image

from oddscope.core.data.images import STRETCHES, load_rgb8, to_rgb8
from oddscope.core.data.science import (
    NO_STEPS,
    ScienceSteps,
    crop_box,
    sigma_clip,
    subtract_background,
)
from oddscope.core.project.features import encoder_key


def _sky(rows=64, cols=80, seed=0) -> np.ndarray:
    """Float sky: 100 + a gradient across and down, unit noise, a bright "galaxy" in the middle."""
    y, x = np.mgrid[0:rows, 0:cols]
    sky = 100 + 0.5 * x - 0.3 * y + np.random.default_rng(seed).normal(0, 1, (rows, cols))
    sky[rows // 2 - 3:rows // 2 + 3, cols // 2 - 3:cols // 2 + 3] += 500
    return sky.astype(np.float32)


def test_background_plane_removes_a_constant_and_a_gradient_and_keeps_the_object():
    out = subtract_background(_sky())
    sky = np.ones(out.shape, bool)
    sky[26:38, 34:46] = False
    assert abs(np.median(out[sky])) < 0.1 and out[sky].std() < 1.1  # only the unit noise is left
    for edge in (out[:4], out[-4:], out[:, :4], out[:, -4:]):  # no slope left anywhere
        assert abs(edge.mean()) < 0.3
    assert out[32, 40] == pytest.approx(500, abs=5)


def test_background_median_removes_a_constant_per_channel():
    rgb = np.stack([np.full((20, 30), v, np.float32) for v in (10, 50, 200)], axis=2)
    rgb[5, 5] = 1000  # a star does not move the sigma-clipped median
    out = subtract_background(rgb, "median")
    assert np.count_nonzero(out) == 3 and out[5, 5].tolist() == [990, 950, 800]


def test_sigma_clip_clips_a_hot_pixel_and_leaves_the_noise():
    noise = np.random.default_rng(1).normal(10, 2, (50, 50)).astype(np.float32)
    noise[7, 9] = 10_000
    out = sigma_clip(noise, 5)
    assert 15 < out[7, 9] < 25  # 5 sigma (~2 each) above the median (~10)
    changed = out != noise
    assert changed[7, 9] and changed.sum() == 1


def test_crop_keeps_the_central_share_of_each_side():
    assert crop_box((100, 60), 0.5) == (slice(25, 75), slice(15, 45))
    assert crop_box((3, 3), 0.1) == (slice(1, 2), slice(1, 2))  # never empty
    grey = np.arange(100 * 60, dtype=np.uint8).reshape(100, 60)
    out = ScienceSteps(crop=0.5).apply(grey)
    assert out.shape == (50, 30, 3) and np.array_equal(out[..., 0], grey[25:75, 15:45])  # 8-bit stays as it is


@pytest.mark.parametrize("stretch", STRETCHES)
def test_stretch_is_the_viewers(stretch):
    sky = _sky()
    assert np.array_equal(ScienceSteps(stretch=stretch).apply(sky), to_rgb8(sky, stretch))


def test_no_steps_decode_exactly_as_before(tmp_path):
    rgb = np.random.default_rng(2).integers(0, 255, (30, 40, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    assert np.array_equal(NO_STEPS.load_rgb8(tmp_path / "a.png"), load_rgb8(tmp_path / "a.png"))
    assert np.array_equal(NO_STEPS.apply(_sky()), to_rgb8(_sky()))


def test_8bit_background_stays_on_the_0_255_scale():
    grey = np.full((40, 40), 60, np.uint8)
    grey[18:22, 18:22] = 200
    out = ScienceSteps(background="plane").apply(grey)[..., 0]
    assert out.dtype == np.uint8 and out[0, 0] == 0 and out[20, 20] == 140


def test_the_steps_run_in_decoding_workers_with_the_resize(tmp_path):
    """The encoder's picklable step carries the steps: decode, steps, resize."""
    grey = np.zeros((64, 64), np.uint8)
    grey[16:48, 16:48] = 255  # crop=0.5 keeps exactly the white square
    Image.fromarray(grey).save(tmp_path / "square.png")
    preprocess = pickle.loads(pickle.dumps(FakeEncoder().preprocessor(ScienceSteps(crop=0.5))))
    assert preprocess.steps == ScienceSteps(crop=0.5)
    assert (preprocess.load(tmp_path / "square.png") == 255).all()
    assert not (FakeEncoder().preprocessor().load(tmp_path / "square.png") == 255).all()


@pytest.mark.parametrize("text, canonical", [
    ("stretch=asinh, crop=0.50,background, clip=3", "background,clip=3,crop=0.5,stretch=asinh"),
    ("background=median", "background=median"),
    ("background=plane,crop=0.6", "background,crop=0.6"),
    ("clip=2.5", "clip=2.5"),
    ("none", "none"),
    ("", "none"),
])
def test_spec_round_trip(text, canonical):
    steps = ScienceSteps.parse(text)
    assert str(steps) == canonical and ScienceSteps.parse(str(steps)) == steps
    assert bool(steps) == (canonical != "none")
    assert pickle.loads(pickle.dumps(steps)) == steps


@pytest.mark.parametrize("text, message", [
    ("blur=2", "unknown preprocessing step 'blur'"),
    ("clip", "'clip' needs a value"),
    ("clip=three", "clip needs a number, got 'three'"),
    ("clip=0", "clip is a number of standard deviations above 0"),
    ("crop=1", "leave crop out to keep the whole image"),
    ("crop=0", "between 0 and 1"),
    ("stretch=sqrt", "stretch must be one of linear, log, asinh, zscale"),
    ("background=poly", "background must be one of plane, median"),
    ("crop=0.5,crop=0.6", "'crop' given twice"),
])
def test_spec_errors_say_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        ScienceSteps.parse(text)


def test_the_feature_key_names_the_steps_and_stays_as_it_was_without_them():
    encoder = FakeEncoder()
    plain = encoder_key(encoder)
    assert encoder_key(encoder, NO_STEPS) == plain
    keys = {encoder_key(encoder, ScienceSteps.parse(s)) for s in ("crop=0.5", "crop=0.6", "stretch=log")}
    assert len(keys) == 3 and plain not in keys
