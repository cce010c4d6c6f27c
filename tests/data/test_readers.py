"""Readers against tiny fixtures written in each real on-disk format."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scan_core.data.readers import (
    FASHION_MNIST_CLASSES,
    BadImageError,
    read_cifar10,
    read_cifar20,
    read_fashion_mnist,
    read_folder,
    read_imagenet,
    read_stl10,
)

from .format_fixtures import (
    CIFAR10_NAMES,
    CIFAR20_NAMES,
    STL10_NAMES,
    save,
    solid,
    write_bad_files,
    write_cifar10,
    write_cifar100,
    write_fashion_mnist,
    write_imagenet,
    write_stl10,
)

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


# --- CIFAR ---------------------------------------------------------------------------------


@pytest.mark.parametrize("py2", [False, True], ids=["py3-pickle", "py2-pickle"])
def test_cifar10_reads_batches_in_order(tmp_path: Path, py2: bool) -> None:
    expected = write_cifar10(tmp_path, per_batch=2, py2=py2)
    for split in ("train", "test"):
        data = read_cifar10(tmp_path, split)
        images, labels = expected[split]
        assert data.images.dtype == np.uint8 and data.images.shape == (len(images), 32, 32, 3)
        np.testing.assert_array_equal(data.images, images)
        np.testing.assert_array_equal(data.labels, labels)
        assert data.labels.dtype == np.int64
        assert data.class_names == CIFAR10_NAMES
        assert data.split == split
        assert data.sources == [f"cifar10:{split}:{i}" for i in range(len(images))]
    assert len(read_cifar10(tmp_path, "train")) == 10


def test_cifar10_pixel_layout_is_channel_planes_row_major(tmp_path: Path) -> None:
    write_cifar10(tmp_path, per_batch=1)
    row = np.zeros(3072, dtype=np.uint8)
    row[5] = 11  # red plane, row 0, column 5
    row[1024 + 32 * 2] = 22  # green plane, row 2, column 0
    row[2048 + 32 * 31 + 31] = 33  # blue plane, last pixel
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(pickle.dumps({b"data": row[None], b"labels": [4]}))
    image = read_cifar10(tmp_path, "test").images[0]
    assert image[0, 5, 0] == 11 and image[2, 0, 1] == 22 and image[31, 31, 2] == 33
    assert int(image.sum()) == 66


@pytest.mark.parametrize("py2", [False, True], ids=["py3-pickle", "py2-pickle"])
def test_cifar20_uses_coarse_labels_and_names(tmp_path: Path, py2: bool) -> None:
    expected = write_cifar100(tmp_path, count=5, py2=py2)
    for split in ("train", "test"):
        data = read_cifar20(tmp_path, split)
        images, coarse = expected[split]
        np.testing.assert_array_equal(data.images, images)
        np.testing.assert_array_equal(data.labels, coarse)
        assert data.class_names == CIFAR20_NAMES
        assert data.sources[0] == f"cifar20:{split}:0"


def test_cifar_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'valid'.*train, test"):
        read_cifar10(tmp_path, "valid")
    with pytest.raises(ValueError, match="'val'.*train, test"):
        read_cifar20(tmp_path, "val")
    with pytest.raises(FileNotFoundError, match="data_batch_1.*download=True"):
        read_cifar10(tmp_path, "train")
    with pytest.raises(FileNotFoundError, match="cifar-100-python.*download=True"):
        read_cifar20(tmp_path, "test")


def test_cifar_refuses_pickles_that_run_code(tmp_path: Path) -> None:
    write_cifar10(tmp_path, per_batch=1)

    class Evil:
        def __reduce__(self) -> tuple:
            return (print, ("pwned",))

    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps({b"data": Evil()}))
    with pytest.raises(pickle.UnpicklingError, match="print"):
        read_cifar10(tmp_path, "test")


# --- STL-10 --------------------------------------------------------------------------------


def test_stl10_images_are_upright_and_labels_shifted(tmp_path: Path) -> None:
    expected = write_stl10(tmp_path, {"train": 3, "test": 2, "unlabeled": 4})
    for split in ("train", "test"):
        data = read_stl10(tmp_path, split)
        images, labels = expected[split]
        assert data.images.shape == (len(images), 96, 96, 3) and data.images.dtype == np.uint8
        np.testing.assert_array_equal(data.images, images)
        np.testing.assert_array_equal(data.labels, labels)
        assert data.labels.min() >= 0 and data.labels.max() <= 9
        assert data.class_names == STL10_NAMES
    unlabeled = read_stl10(tmp_path, "unlabeled")
    assert unlabeled.labels is None and unlabeled.class_names is None
    assert unlabeled.images.shape == (4, 96, 96, 3)
    assert unlabeled.sources == [f"stl10:unlabeled:{i}" for i in range(4)]


def test_stl10_asymmetric_pixel(tmp_path: Path) -> None:
    write_stl10(tmp_path, {"test": 1})
    image = np.zeros((96, 96, 3), dtype=np.uint8)
    image[0, 5] = (200, 100, 50)  # row 0, column 5: transposing H/W would move it to row 5
    folder = tmp_path / "stl10_binary"
    image.transpose(2, 1, 0).tofile(folder / "test_X.bin")  # channel, column, row
    np.array([7], dtype=np.uint8).tofile(folder / "test_y.bin")
    data = read_stl10(tmp_path, "test")
    assert tuple(data.images[0, 0, 5]) == (200, 100, 50)
    assert tuple(data.images[0, 5, 0]) == (0, 0, 0)
    assert data.labels.tolist() == [6]


def test_stl10_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'extra'.*train, test, unlabeled"):
        read_stl10(tmp_path, "extra")
    with pytest.raises(FileNotFoundError, match="train_X.bin.*download=True"):
        read_stl10(tmp_path, "train")


# --- Fashion-MNIST (IDX) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subdir", "gz"),
    [("", True), ("FashionMNIST/raw", True), ("FashionMNIST/raw", False)],
    ids=["debian-flat-gz", "torchvision-gz", "torchvision-raw"],
)
def test_fashion_mnist_idx_layouts(tmp_path: Path, subdir: str, gz: bool) -> None:
    expected = write_fashion_mnist(tmp_path / subdir, {"train": 6, "test": 4}, gz=gz)
    for split in ("train", "test"):
        data = read_fashion_mnist(tmp_path, split)
        images, labels = expected[split]
        assert data.images.shape == (len(images), 28, 28, 1) and data.images.dtype == np.uint8
        np.testing.assert_array_equal(data.images, images)
        np.testing.assert_array_equal(data.labels, labels)
        assert data.labels.dtype == np.int64
        assert data.class_names == FASHION_MNIST_CLASSES and len(data.class_names) == 10
        assert data.sources[-1] == f"fashion-mnist:{split}:{len(images) - 1}"


def test_fashion_mnist_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'val'.*train, test"):
        read_fashion_mnist(tmp_path, "val")
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte.*download=True"):
        read_fashion_mnist(tmp_path, "test")
    write_fashion_mnist(tmp_path, {"train": 2, "test": 2})
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_fashion_mnist(tmp_path, "test")


@pytest.mark.skipif(not DEBIAN_FASHION_MNIST.is_dir(),
                    reason="Debian package dataset-fashion-mnist is not installed")
def test_fashion_mnist_real_debian_test_split() -> None:
    data = read_fashion_mnist(DEBIAN_FASHION_MNIST, "test")
    assert data.images.shape == (10_000, 28, 28, 1) and data.images.dtype == np.uint8
    assert len(data.class_names) == 10
    np.testing.assert_array_equal(np.bincount(data.labels, minlength=10), [1000] * 10)


# --- ImageNet ------------------------------------------------------------------------------


def test_imagenet_subset(tmp_path: Path) -> None:
    subset, wnids = write_imagenet(tmp_path)
    train = read_imagenet(tmp_path, "train", 16, subset)
    assert train.class_names == wnids  # sorted; n02009912 is not in the subset
    assert train.images.shape == (4, 16, 16, 3) and train.images.dtype == np.uint8
    assert train.labels.tolist() == [0, 0, 1, 1]
    assert train.sources == [
        "train/n01440764/n01440764_0.JPEG",
        "train/n01440764/n01440764_1.JPEG",
        "train/n01558993/n01558993_0.JPEG",
        "train/n01558993/n01558993_1.JPEG",
    ]
    # Fixture colours: red = 40 * (position in the unsorted wnid list) + 20 (JPEG is lossy).
    assert abs(int(train.images[0, 8, 8, 0]) - 60) < 8
    assert abs(int(train.images[2, 8, 8, 0]) - 20) < 8
    val = read_imagenet(tmp_path, "val", 8, subset)
    assert val.labels.tolist() == [0, 1] and val.split == "val"
    everything = read_imagenet(tmp_path, "val", 8, None)
    assert everything.class_names == ["n01440764", "n01558993", "n02009912"]


def test_imagenet_errors(tmp_path: Path) -> None:
    subset, _ = write_imagenet(tmp_path)
    with pytest.raises(ValueError, match="'test'.*train, val"):
        read_imagenet(tmp_path, "test", 8, subset)
    (tmp_path / "bad_subset.txt").write_text("n01440764\nn09999999 imaginary\n")
    with pytest.raises(FileNotFoundError, match="n09999999") as error:
        read_imagenet(tmp_path, "train", 8, tmp_path / "bad_subset.txt")
    assert "n01440764" not in str(error.value)
    with pytest.raises(FileNotFoundError, match="ImageNet"):
        read_imagenet(tmp_path / "nowhere", "train", 8, None)


# --- folders -------------------------------------------------------------------------------


def test_folder_with_class_subfolders(tmp_path: Path) -> None:
    save(tmp_path / "dog" / "b.png", solid((0, 0, 30)))
    save(tmp_path / "cat" / "z.JPG", solid((250, 0, 0)), "JPEG")
    save(tmp_path / "cat" / "a.png", solid((10, 0, 0)))
    save(tmp_path / "dog" / "deeper" / "c.Png", solid((0, 0, 60)))
    (tmp_path / "cat" / "readme.txt").write_text("not an image")
    data = read_folder(tmp_path, 8)
    assert data.class_names == ["cat", "dog"]
    assert data.sources == ["cat/a.png", "cat/z.JPG", "dog/b.png", "dog/deeper/c.Png"]
    assert data.labels.tolist() == [0, 0, 1, 1] and data.labels.dtype == np.int64
    assert data.images.shape == (4, 8, 8, 3) and data.images.dtype == np.uint8
    assert data.images[0, 0, 0].tolist() == [10, 0, 0]
    assert data.images[3, 0, 0].tolist() == [0, 0, 60]
    assert data.skipped == []
    again = read_folder(tmp_path, 8)
    assert again.sources == data.sources and np.array_equal(again.images, data.images)


@pytest.mark.parametrize(
    "layout",
    [["a.png", "sub/b.png", "other/c.png"], ["only/a.png", "only/b.png"]],
    ids=["loose-file", "single-subfolder"],
)
def test_folder_without_classes(tmp_path: Path, layout: list[str]) -> None:
    for i, name in enumerate(layout):
        save(tmp_path / name, solid((i, i, i)))
    data = read_folder(tmp_path, 8)
    assert data.labels is None and data.class_names is None
    assert data.sources == sorted(layout, key=lambda s: Path(s).parts)


def test_folder_all_grayscale_gives_one_channel(tmp_path: Path) -> None:
    save(tmp_path / "a.png", solid(100, mode="L"))
    save(tmp_path / "b.png", solid(1, mode="1"))
    sixteen = Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16))
    save(tmp_path / "c.png", sixteen)
    data = read_folder(tmp_path, 8)
    assert data.images.shape == (3, 8, 8, 1)
    assert data.images[:, 0, 0, 0].tolist() == [100, 255, 255]


def test_folder_gray_and_rgba_become_rgb_on_white(tmp_path: Path) -> None:
    save(tmp_path / "gray.png", solid(100, mode="L"))
    rgba = Image.new("RGBA", (8, 8), (255, 0, 0, 255))
    rgba.putpixel((0, 0), (0, 0, 0, 0))  # fully transparent -> white
    rgba.putpixel((1, 0), (0, 0, 0, 128))  # half transparent black -> mid grey
    save(tmp_path / "rgba.png", rgba)
    data = read_folder(tmp_path, 8)
    assert data.images.shape == (2, 8, 8, 3)
    assert data.images[0, 0, 0].tolist() == [100, 100, 100]
    assert data.images[1, 0, 0].tolist() == [255, 255, 255]
    assert all(120 <= v <= 135 for v in data.images[1, 0, 1])
    assert data.images[1, 4, 4].tolist() == [255, 0, 0]


def test_folder_mixed_sizes_resize_shorter_side_and_center_crop(tmp_path: Path) -> None:
    stripes = np.zeros((20, 60, 3), dtype=np.uint8)
    stripes[:, :20] = (255, 0, 0)
    stripes[:, 20:40] = (0, 255, 0)
    stripes[:, 40:] = (0, 0, 255)
    save(tmp_path / "wide.png", Image.fromarray(stripes))
    save(tmp_path / "tall.png", Image.fromarray(stripes.transpose(1, 0, 2).copy()))
    save(tmp_path / "small.png", solid((1, 2, 3), size=(4, 6)))
    data = read_folder(tmp_path, 16)
    assert data.images.shape == (3, 16, 16, 3)
    small, tall, wide = data.images  # sorted: small, tall, wide
    assert small[8, 8].tolist() == [1, 2, 3]
    # 60x20 -> 48x16 -> the middle 16 columns are the green stripe.
    for image in (tall, wide):
        assert image[2:-2, 2:-2, 1].min() > 200 and image[2:-2, 2:-2, [0, 2]].max() < 60


def test_folder_bad_files_fail_lists_all(tmp_path: Path) -> None:
    save(tmp_path / "good.png", solid((1, 2, 3)))
    bad = write_bad_files(tmp_path / "broken")
    with pytest.raises(BadImageError) as error:
        read_folder(tmp_path, 8)
    message = str(error.value)
    for name in bad:
        assert f"broken/{name}" in message
    assert "data.on_bad_image: skip" in message
    assert isinstance(error.value, ValueError)


def test_folder_bad_files_skip(tmp_path: Path) -> None:
    save(tmp_path / "a_good.png", solid((1, 2, 3)))
    save(tmp_path / "z_good.jpeg", solid((200, 200, 200)), "JPEG")
    bad = write_bad_files(tmp_path)
    data = read_folder(tmp_path, 8, on_bad_image="skip")
    assert data.sources == ["a_good.png", "z_good.jpeg"]
    assert data.images.shape == (2, 8, 8, 3)
    assert sorted(source for source, _ in data.skipped) == bad
    assert all(reason for _, reason in data.skipped)


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing"):
        read_folder(tmp_path / "missing", 8)
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(FileNotFoundError, match=r"no images.*\.png.*\.jpeg"):
        read_folder(tmp_path, 8)
    save(tmp_path / "a.png", solid(1, mode="L"))
    with pytest.raises(ValueError, match="fail, skip"):
        read_folder(tmp_path, 8, on_bad_image="ignore")
