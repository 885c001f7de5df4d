import numpy as np
import pytest
from PIL import Image

from oddscope.core.data.masks import find_masks, load_mask


def _save(path, pixels):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def _images(root, *names):
    return [str(_save(root / name, np.zeros((4, 4, 3), np.uint8))) for name in names]


def test_mvtec_layout_mirrors_defect_folders_and_good_images_have_no_mask(tmp_path):
    images = _images(tmp_path / "test", "good/000.png", "crack/000.png", "crack/001.png", "cut/000.png")
    gt = tmp_path / "ground_truth"
    for name in ("crack/000_mask.png", "crack/001_mask.png", "cut/000_mask.png", "cut/001_mask.png"):
        _save(gt / name, np.zeros((4, 4), np.uint8))
    matches = find_masks(gt, images)
    assert list(matches) == images
    assert [m and m.relative_to(gt).as_posix() for m in matches.values()] == [
        None, "crack/000_mask.png", "crack/001_mask.png", "cut/000_mask.png"]
    assert matches.conventions == {"<stem>_mask in mirrored subfolders": 3}
    assert matches.unused == [gt / "cut/001_mask.png"]
    assert matches.summary() == ("masks for 3 of 4 images (3 by <stem>_mask in mirrored subfolders); "
                                 "1 without a mask (normal); 1 mask files matched no image")


def test_flat_folder_with_bare_stem_and_gt_names(tmp_path):
    images = _images(tmp_path / "imgs", "a.jpg", "b.png", "c.tif")
    _save(tmp_path / "masks" / "a.png", np.zeros((4, 4), np.uint8))
    _save(tmp_path / "masks" / "b_gt.bmp", np.zeros((4, 4), np.uint8))
    matches = find_masks(tmp_path / "masks", images)
    assert [m and m.name for m in matches.values()] == ["a.png", "b_gt.bmp", None]
    assert matches.conventions == {"<stem> in the mask folder": 1, "<stem>_gt in the mask folder": 1}
    assert matches.summary() == ("masks for 2 of 3 images (1 by <stem> in the mask folder, "
                                 "1 by <stem>_gt in the mask folder); 1 without a mask (normal)")


def test_a_fits_image_matches_by_the_name_before_its_double_extension(tmp_path):
    image = str(tmp_path / "sky" / "field7.fits.gz")  # matching reads names only: the image need not exist
    mask = _save(tmp_path / "masks" / "field7_mask.png", np.zeros((4, 4), np.uint8))
    assert find_masks(tmp_path / "masks", [image]) == {image: mask}


def test_masks_beside_their_images_never_match_the_images_themselves(tmp_path):
    images = _images(tmp_path, "a.png", "b.png")
    mask = _save(tmp_path / "a_mask.png", np.zeros((4, 4), np.uint8))
    assert find_masks(tmp_path, images) == {images[0]: mask, images[1]: None}


def test_the_deepest_mirror_then_the_mask_suffix_wins(tmp_path):
    images = _images(tmp_path / "imgs", "sub/x.png", "other/x.png")
    masks = tmp_path / "masks"
    for name in ("x.png", "x_mask.png", "sub/x.png"):
        _save(masks / name, np.zeros((4, 4), np.uint8))
    matches = find_masks(masks, images)
    assert matches[images[0]] == masks / "sub/x.png"  # the mirrored subfolder beats the flat ones
    assert matches[images[1]] == masks / "x_mask.png"  # a flat folder: "_mask" beats the bare stem
    assert matches.unused == [masks / "x.png"]


def test_a_missing_mask_folder_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        find_masks(tmp_path / "nowhere", [])


def test_any_non_zero_pixel_in_any_channel_or_palette_colour_is_defect(tmp_path):
    expected = np.zeros((5, 6), bool)
    expected[1:3, 2:5] = True
    grey = _save(tmp_path / "grey.png", expected.astype(np.uint8) * 255)
    rgb_pixels = np.zeros((5, 6, 3), np.uint8)
    rgb_pixels[expected, 2] = 1  # a faint blue: still defect
    rgb = _save(tmp_path / "rgb.png", rgb_pixels)
    deep = _save(tmp_path / "deep.png", expected.astype(np.uint16) * 7)
    palette = Image.fromarray(expected.astype(np.uint8), "P")
    palette.putpalette([0, 0, 0, 200, 0, 0] + [0] * 762)
    palette.save(tmp_path / "palette.png")
    for path in (grey, rgb, deep, tmp_path / "palette.png"):
        mask = load_mask(path)
        assert mask.dtype == bool
        np.testing.assert_array_equal(mask, expected, err_msg=path.name)


def test_load_mask_resizes_by_nearest_neighbour(tmp_path):
    pixels = np.zeros((2, 3), np.uint8)
    pixels[0, 1] = 255
    mask = load_mask(_save(tmp_path / "m.png", pixels), shape=(4, 6))
    expected = np.zeros((4, 6), bool)
    expected[0:2, 2:4] = True
    np.testing.assert_array_equal(mask, expected)


def test_an_unreadable_mask_names_the_file_and_the_reason(tmp_path):
    broken = tmp_path / "broken_mask.png"
    broken.write_bytes(b"not a png at all")
    with pytest.raises(ValueError, match=r"cannot read mask '.*broken_mask\.png': not an image Oddscope can read"):
        load_mask(broken)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.png': empty file"):
        load_mask(tmp_path / "empty.png")
