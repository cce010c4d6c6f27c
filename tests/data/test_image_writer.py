"""Writing images.npy chunk by chunk: the same pixels, sources, labels and statistics as
decoding everything into memory, with any chunk size."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scan_core.data.image_store import ImageStore
from scan_core.data.image_writer import NpyRowWriter, PixelStatistics, write_images
from scan_core.data.readers import BadImageError
from scan_core.data.sources import array_image_set, load_image_set, resize_images, split_parts

from .format_fixtures import write_cifar10, write_imagenet


def _folder(root: Path, count: int = 11, gray_every: int = 0, side: int = 10, seed: int = 0) -> Path:
    """Two class folders of PNGs of assorted sizes (some grayscale when ``gray_every``)."""
    rng = np.random.default_rng(seed)
    for index in range(count):
        folder = root / ("cat" if index % 2 else "dog")
        folder.mkdir(parents=True, exist_ok=True)
        shape = (side + index % 3, side + 2 * (index % 2))
        if gray_every and index % gray_every == 0:
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(folder / f"{index:03d}.png")
        else:
            Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8)).save(folder / f"{index:03d}.png")
    return root


def _float64_mean_std(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pixels = images.astype(np.float64) / 255.0
    return pixels.mean(axis=(0, 1, 2)), pixels.std(axis=(0, 1, 2))


@pytest.mark.parametrize("chunk_bytes", [1, 700, 1 << 20], ids=["one-row", "few-rows", "one-chunk"])
@pytest.mark.parametrize("gray_every", [0, 3, 1], ids=["rgb", "mixed", "all-gray"])
def test_folder_written_in_chunks_equals_decoding_in_memory(tmp_path, chunk_bytes, gray_every):
    root = _folder(tmp_path / "images", gray_every=gray_every)
    expected = load_image_set("folder", "all", root, image_size=8)
    path = tmp_path / "images.npy"
    written = write_images(split_parts("folder", "all", root), [True], path, 8, "fail",
                           chunk_bytes=chunk_bytes, workers=2)
    stored = np.load(path)
    np.testing.assert_array_equal(stored, expected.images)
    assert stored.shape[-1] == (1 if gray_every == 1 else 3) == written.channels
    assert written.sources == expected.sources and written.class_names == expected.class_names == ["cat", "dog"]
    np.testing.assert_array_equal(written.labels, expected.labels)
    assert written.content_hashes == [hashlib.sha256(image.tobytes()).hexdigest() for image in expected.images]
    mean, std = _float64_mean_std(expected.images)
    np.testing.assert_allclose(written.mean, mean, rtol=0, atol=1e-12)
    np.testing.assert_allclose(written.std, std, rtol=0, atol=1e-12)


def test_statistics_cover_training_rows_only(tmp_path):
    write_cifar10(tmp_path / "cifar")
    train = split_parts("cifar10", "train", tmp_path / "cifar")
    test = split_parts("cifar10", "test", tmp_path / "cifar")
    written = write_images([*train, *test], [True, False], tmp_path / "images.npy", None, "fail", chunk_bytes=3000)
    expected = load_image_set("cifar10", "train+test", tmp_path / "cifar", image_size=32)
    np.testing.assert_array_equal(np.load(tmp_path / "images.npy"), expected.images)
    np.testing.assert_array_equal(written.in_train, np.arange(12) < 10)
    mean, std = _float64_mean_std(expected.images[:10])
    np.testing.assert_allclose(written.mean, mean, atol=1e-12)
    np.testing.assert_allclose(written.std, std, atol=1e-12)
    assert written.image_size == 32 and written.labels.tolist() == expected.labels.tolist()


def test_imagenet_parts_resize_to_one_size(tmp_path):
    subset, _ = write_imagenet(tmp_path)
    parts = split_parts("imagenet", "train+val", tmp_path, subset_file=subset)
    written = write_images(parts, [True, False], tmp_path / "images.npy", 12, "fail", chunk_bytes=500)
    expected = load_image_set("imagenet", "train+val", tmp_path, image_size=12, subset_file=subset)
    np.testing.assert_array_equal(np.load(tmp_path / "images.npy"), expected.images)
    assert written.sources == expected.sources


def test_bad_files_listed_or_skipped(tmp_path):
    root = _folder(tmp_path / "images", count=6)
    (root / "dog" / "broken.png").write_bytes(b"not a png")
    (root / "cat" / "empty.png").write_bytes(b"")
    with pytest.raises(BadImageError, match=r"2 file\(s\).*\n.*cat/empty.png.*\n.*dog/broken.png"):
        write_images(split_parts("folder", "all", root), [True], tmp_path / "a.npy", 8, "fail", chunk_bytes=200)
    written = write_images(split_parts("folder", "all", root), [True], tmp_path / "b.npy", 8, "skip", chunk_bytes=200)
    assert [source for source, _ in written.skipped] == ["cat/empty.png", "dog/broken.png"]
    assert written.count == 6 == len(np.load(tmp_path / "b.npy")) == len(written.sources)
    assert not any("broken" in source for source in written.sources)


def test_arrays_are_resized_chunk_by_chunk(tmp_path):
    images = np.random.default_rng(1).integers(0, 256, (7, 12, 12, 3), dtype=np.uint8)
    image_set = array_image_set(images)
    written = write_images([lambda: image_set], [True], tmp_path / "images.npy", 6, "fail", chunk_bytes=6 * 6 * 3 * 2)
    np.testing.assert_array_equal(np.load(tmp_path / "images.npy"), resize_images(images, 6))  # all at once
    assert written.count == 7 and written.labels is None


def test_row_writer_header_takes_the_final_count(tmp_path):
    writer = NpyRowWriter(tmp_path / "rows.npy", (2, 3))
    for start in range(0, 25, 4):
        writer.append(np.arange(start * 6, min(start + 4, 25) * 6, dtype=np.uint8).reshape(-1, 2, 3))
    writer.close()
    np.testing.assert_array_equal(np.load(tmp_path / "rows.npy"), np.arange(150, dtype=np.uint8).reshape(25, 2, 3))
    assert ImageStore(tmp_path / "rows.npy").shape == (25, 2, 3)
    with pytest.raises(ValueError, match="rows of"):
        NpyRowWriter(tmp_path / "other.npy", (2, 3)).append(np.zeros((1, 3, 2), dtype=np.uint8))


def test_pixel_statistics_by_hand():
    statistics = PixelStatistics.empty(1)
    statistics.add(np.array([0, 255], dtype=np.uint8).reshape(1, 1, 2, 1))
    statistics.add(np.array([255, 255], dtype=np.uint8).reshape(2, 1, 1, 1))
    (mean,), (std,) = statistics.mean_std()
    assert mean == pytest.approx(0.75) and std == pytest.approx(np.sqrt(0.75 * 0.25))
