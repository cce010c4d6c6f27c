"""Which files of a user's folder are read: TIFF, HEIC, folder links and loops, links out of
the folder, file names that are not UTF-8."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scan_core.data.image_search import find_images
from scan_core.data.readers import BadImageError, list_folder, read_folder


def photo(path: Path, value: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (12, 12), (value, value, value)).save(path)
    return path


def test_tiff_files_are_read(tmp_path):
    photo(tmp_path / "a.png")
    Image.new("RGB", (12, 12), (7, 8, 9)).save(tmp_path / "scan.tif")
    Image.new("L", (12, 12), 50).save(tmp_path / "scan2.TIFF")
    data = read_folder(tmp_path, 8)
    assert data.sources == ["a.png", "scan.tif", "scan2.TIFF"]
    assert data.images[1, 4, 4].tolist() == [7, 8, 9]


def test_heic_files_without_pillow_heif_are_counted_and_named_in_one_warning(tmp_path):
    try:
        import pillow_heif  # noqa: F401
        pytest.skip("pillow-heif is installed here: HEIC files are read")
    except ImportError:
        pass
    photo(tmp_path / "a.png")
    (tmp_path / "IMG_0001.HEIC").write_bytes(b"\0" * 16)
    (tmp_path / "IMG_0002.heif").write_bytes(b"\0" * 16)
    listing = list_folder(tmp_path)
    assert listing.sources == ["a.png"]
    [line] = [line for line in listing.warnings if "HEIC" in line]
    assert line.startswith("2 HEIC/HEIF file(s) not read") and "pillow-heif" in line
    assert "IMG_0001.HEIC" in line and "IMG_0002.heif" in line


def test_a_folder_link_is_followed_once_and_a_loop_is_said(tmp_path):
    root, elsewhere = tmp_path / "photos", tmp_path / "more_photos"
    photo(root / "a.png")
    photo(elsewhere / "b.png")
    os.symlink(elsewhere, root / "linked_dir")
    os.symlink(root, root / "back_to_root")  # a loop
    os.symlink(elsewhere, root / "same_again")  # the linked folder a second way
    listing = list_folder(root)
    assert listing.sources == ["a.png", "linked_dir/b.png"]
    loops = next(line for line in listing.warnings if "not followed" in line)
    assert loops.startswith("2 folder link(s) not followed") and "back_to_root" in loops and "same_again" in loops
    outside = next(line for line in listing.warnings if "outside" in line)
    assert f"linked_dir -> {elsewhere}" in outside


def test_a_file_link_out_of_the_folder_is_said_and_a_file_link_loop_is_a_bad_file(tmp_path):
    root = tmp_path / "photos"
    photo(root / "a.png")
    os.symlink(photo(tmp_path / "outside.png"), root / "link.png")
    os.symlink(root / "loop.png", root / "loop.png")
    search = find_images(root)
    assert [path.name for path in search.paths] == ["a.png", "link.png", "loop.png"]
    assert any("link.png ->" in line and "outside" in line for line in search.warnings())
    with pytest.raises(BadImageError, match="loop.png"):
        read_folder(root, 8)
    assert read_folder(root, 8, on_bad_image="skip").sources == ["a.png", "link.png"]


def test_a_file_name_that_is_not_utf8_is_refused_before_decoding_or_skipped_and_named(tmp_path):
    photo(tmp_path / "good.png")
    name = os.fsdecode(b"bad\xff\xfename.png")
    photo(tmp_path / name)
    with pytest.raises(BadImageError, match=r"bad\\xff\\xfename.png: file name is not valid UTF-8"):
        read_folder(tmp_path, 8)
    data = read_folder(tmp_path, 8, on_bad_image="skip")
    assert data.sources == ["good.png"] and data.skipped[0][0] == "bad\\xff\\xfename.png"
    assert np.all(data.images == 100)
