"""Reading images of every kind the ingest accepts, and the display stretches."""

import numpy as np
import pytest
from PIL import Image

from oddscope.core.data.images import ImageReadError, load_array, load_rgb8, stretch_values, to_rgb8


def _save(path, array, **kw):
    Image.fromarray(array).save(path, **kw)
    return path


def test_8bit_grey_rgb_rgba_palette_cmyk(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)
    assert load_rgb8(_save(tmp_path / "a.png", rgb)).tolist() == rgb.tolist()
    grey = load_rgb8(_save(tmp_path / "g.png", rgb[..., 0]))
    assert grey.shape == (20, 30, 3) and (grey[..., 0] == rgb[..., 0]).all()
    rgba = np.dstack([rgb, np.full((20, 30), 255, np.uint8)])
    assert load_rgb8(_save(tmp_path / "a4.png", rgba)).tolist() == rgb.tolist()
    Image.fromarray(rgb).convert("P").save(tmp_path / "p.png")
    assert load_rgb8(tmp_path / "p.png").shape == (20, 30, 3)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "c.jpg")
    cmyk = load_rgb8(tmp_path / "c.jpg")
    assert cmyk.shape == (20, 30, 3) and np.abs(cmyk.astype(int) - rgb).mean() < 40


def test_16bit_png_and_float_tiff_keep_their_values(tmp_path):
    import tifffile

    ramp = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "r16.png")
    assert load_array(tmp_path / "r16.png").dtype == np.uint16
    floats = np.linspace(-1, 1, 100, dtype=np.float32).reshape(10, 10)
    floats[0, 0] = np.nan
    tifffile.imwrite(tmp_path / "f.tif", floats)
    arr = load_array(tmp_path / "f.tif")
    assert arr.dtype == np.float32 and np.isfinite(arr).all()
    rgb = load_rgb8(tmp_path / "r16.png")
    assert rgb.dtype == np.uint8 and rgb.min() == 0 and rgb.max() == 255


def test_fits_nan_cube_and_failures(tmp_path):
    from astropy.io import fits

    data = np.ones((3, 16, 16), np.float32)
    data[0, 4, 4] = np.nan
    fits.writeto(tmp_path / "cube.fits", data)
    arr = load_array(tmp_path / "cube.fits")
    assert arr.shape == (16, 16) and np.isfinite(arr).all()
    fits.writeto(tmp_path / "nan.fits", np.full((8, 8), np.nan, np.float32))
    with pytest.raises(ImageReadError, match="no finite pixels"):
        load_array(tmp_path / "nan.fits")
    fits.HDUList([fits.PrimaryHDU()]).writeto(tmp_path / "empty.fits")
    with pytest.raises(ImageReadError, match="no image HDU"):
        load_array(tmp_path / "empty.fits")


def test_unreadable_files_give_one_line_reasons(tmp_path):
    (tmp_path / "zero.png").write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty file"):
        load_array(tmp_path / "zero.png")
    (tmp_path / "text.jpg").write_text("not an image")
    with pytest.raises(ImageReadError, match="not an image"):
        load_array(tmp_path / "text.jpg")
    good = _save(tmp_path / "t.png", np.zeros((64, 64, 3), np.uint8))
    (tmp_path / "trunc.png").write_bytes(good.read_bytes()[:60])
    with pytest.raises(ImageReadError) as err:
        load_array(tmp_path / "trunc.png")
    assert "\n" not in str(err.value)


def test_too_many_pixels_is_skipped_with_advice(tmp_path):
    path = _save(tmp_path / "big.png", np.zeros((200, 300), np.uint8))
    with pytest.raises(ImageReadError, match="--max-pixels"):
        load_array(path, max_pixels=10_000)


def test_large_jpeg_is_decoded_at_reduced_size(tmp_path):
    path = _save(tmp_path / "big.jpg", np.zeros((2000, 1600, 3), np.uint8))
    assert max(load_array(path, target_side=448).shape[:2]) <= 1000


def test_exif_rotation_is_applied(tmp_path):
    img = Image.fromarray(np.zeros((10, 20, 3), np.uint8))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees
    img.save(tmp_path / "rot.jpg", exif=exif)
    assert load_array(tmp_path / "rot.jpg").shape[:2] == (20, 10)


@pytest.mark.parametrize("stretch", ["linear", "log", "asinh", "zscale"])
def test_stretches_map_to_unit_range_monotonically(stretch):
    values = np.linspace(0, 1000, 400, dtype=np.float32).reshape(20, 20)
    out = stretch_values(values, stretch)
    assert out.min() >= 0 and out.max() <= 1
    assert np.all(np.diff(out.ravel()) >= -1e-6)
    assert to_rgb8(values, stretch).shape == (20, 20, 3)


def test_stretches_give_their_known_curves_on_a_ramp():
    """Each stretch is its own curve, not just some monotone map to [0, 1]: known values at x = 0.1
    (linear 0.1, log ln(101)/ln(1001) = 0.6680, asinh asinh(1)/asinh(10) = 0.2940), and all three differ."""
    x = np.linspace(0.0, 1.0, 101, dtype=np.float32).reshape(1, -1)
    out = {s: stretch_values(x, s, low_pct=0, high_pct=100)[0] for s in ("linear", "log", "asinh")}
    assert out["linear"][10] == pytest.approx(0.1, abs=1e-6)
    assert out["log"][10] == pytest.approx(0.6680, abs=1e-4)
    assert out["asinh"][10] == pytest.approx(0.2940, abs=1e-4)
    np.testing.assert_allclose(out["log"], np.log1p(1000 * x[0]) / np.log1p(1000), atol=1e-6)
    np.testing.assert_allclose(out["asinh"], np.arcsinh(10 * x[0]) / np.arcsinh(10), atol=1e-6)
    inside = slice(1, -1)  # all curves meet at 0 and 1; in between log > asinh > linear
    assert (out["log"][inside] > out["asinh"][inside]).all()
    assert (out["asinh"][inside] > out["linear"][inside]).all()
    # contrast steepens asinh: a = 10 * contrast
    steeper = stretch_values(x, "asinh", contrast=2.0, low_pct=0, high_pct=100)[0]
    np.testing.assert_allclose(steeper, np.arcsinh(20 * x[0]) / np.arcsinh(20), atol=1e-6)
    # float input defaults to asinh between the 0.5 and 99.5 percentiles
    assert to_rgb8(x)[0, 50, 0] == round(255 * float(stretch_values(x, "asinh")[0, 50]))


def test_zscale_ignores_bright_outliers_where_linear_does_not():
    """Sky noise around 100 with a few saturated stars: zscale puts the sky mid-grey, stars white;
    a min-max linear stretch shows the sky black."""
    sky = np.random.default_rng(0).normal(100.0, 1.0, (64, 64)).astype(np.float32)
    sky[::16, ::16] = 1e4
    median = np.abs(sky - 100.0) < 0.05
    zscale = stretch_values(sky, "zscale")
    assert 0.3 < zscale[median].mean() < 0.7 and (zscale[::16, ::16] == 1.0).all()
    assert stretch_values(sky, "linear", low_pct=0, high_pct=100)[median].max() < 0.02
