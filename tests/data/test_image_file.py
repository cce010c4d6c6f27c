"""One image file to pixels, as prepare and scan-predict both read it: orientation, 16-bit
data, extreme aspect ratios, and memory that does not grow with the aspect ratio."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scan_core.data.image_file import decode_file
from scan_core.data.readers import read_folder
from scan_core.predict_files import load_image_file

RED, BLUE = (230, 20, 20), (20, 20, 230)


def sideways_photo(path: Path, orientation: int) -> Path:
    """A 40 x 20 JPEG, left half red and right half blue, with EXIF ``orientation``."""
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, :20], pixels[:, 20:] = RED, BLUE
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, format="JPEG", quality=95, exif=exif)
    return path


def colour(pixel: np.ndarray) -> str:
    return "red" if pixel[0] > pixel[2] else "blue"


# As a viewer shows them: 3 turns half round, 6 puts the left side on top, 8 the right side.
ORIENTED = {3: ("blue", "red", "left", "right"), 6: ("red", "blue", "top", "bottom"),
            8: ("blue", "red", "top", "bottom")}


@pytest.mark.parametrize("orientation", sorted(ORIENTED))
def test_exif_orientation_is_applied_in_prepare_and_scan_predict_alike(tmp_path, orientation):
    sideways_photo(tmp_path / "photo.jpg", orientation)
    first, second, where_first, _ = ORIENTED[orientation]
    prepared = read_folder(tmp_path, 16).images[0]
    predicted = load_image_file(tmp_path / "photo.jpg", 16, 3)
    assert np.array_equal(prepared, predicted)
    if where_first == "top":  # a portrait now: the crop runs along the height
        assert (colour(prepared[1, 8]), colour(prepared[-2, 8])) == (first, second)
    else:
        assert (colour(prepared[8, 1]), colour(prepared[8, -2])) == (first, second)


def test_16_bit_grayscale_maps_by_the_formats_range_not_each_images_maximum(tmp_path):
    dark = np.linspace(0, 200, 64, dtype=np.uint16).reshape(8, 8)  # near black out of 0..65535
    mid = np.full((8, 8), 32896, dtype=np.uint16)  # half of 65535
    Image.fromarray(dark).save(tmp_path / "dark.png")
    Image.fromarray(mid).save(tmp_path / "mid.png")
    assert Image.open(tmp_path / "dark.png").mode.startswith("I")
    assert decode_file(tmp_path / "dark.png", 8).pixels.max() <= 1
    assert np.all(decode_file(tmp_path / "mid.png", 8).pixels == 128)


def test_an_extreme_aspect_ratio_is_padded_keeping_its_centre_part_whole(tmp_path):
    strip = np.zeros((4000, 16, 3), dtype=np.uint8)  # 16 wide, 4000 tall
    strip[:, :8], strip[:, 8:] = RED, BLUE
    Image.fromarray(strip).save(tmp_path / "strip.png")
    decoded = decode_file(tmp_path / "strip.png", 64)
    assert decoded.padded and decoded.pixels.shape == (64, 64, 3)
    # The centre 16 x 48 part, scaled to 21 x 64, sits in the middle columns on its mean colour.
    middle = decoded.pixels[32]
    assert colour(middle[24]) == "red" and colour(middle[40]) == "blue"
    fill = decoded.pixels[32, 2]
    assert abs(int(fill[0]) - int(fill[2])) < 10  # neither half's colour: the mean of both
    assert not decode_file(_square(tmp_path), 64).padded


def _square(folder: Path) -> Path:
    Image.new("RGB", (30, 20), RED).save(folder / "photo.png")
    return folder / "photo.png"


def test_a_1_by_500000_strip_decodes_in_moments(tmp_path):
    Image.new("L", (1, 500_000), 90).save(tmp_path / "thin.png")
    started = time.perf_counter()
    decoded = decode_file(tmp_path / "thin.png", 64)
    assert time.perf_counter() - started < 5  # the old resize built a 64 x 32,000,000 image first
    assert decoded.padded and decoded.pixels.shape == (64, 64) and np.all(decoded.pixels == 90)
