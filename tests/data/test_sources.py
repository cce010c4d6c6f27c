"""Every data.name reaches the same ImageSet through load_image_set, splits join with '+'."""

from __future__ import annotations

import numpy as np
import pytest

from scan_core.data.sources import array_image_set, load_image_set
from tests.data import format_fixtures as fixtures


def test_cifar10_train_plus_test_is_the_papers_full_set(tmp_path):
    written = fixtures.write_cifar10(tmp_path)
    image_set = load_image_set("cifar10", "train+test", tmp_path, image_size=32)
    assert image_set.images.shape == (12, 32, 32, 3) and image_set.split == "train+test"
    np.testing.assert_array_equal(image_set.images, np.concatenate([written["train"][0], written["test"][0]]))
    np.testing.assert_array_equal(image_set.labels, np.concatenate([written["train"][1], written["test"][1]]))


def test_cifar20_uses_superclass_labels_and_resizes(tmp_path):
    written = fixtures.write_cifar100(tmp_path)
    image_set = load_image_set("cifar20", "test", tmp_path, image_size=16)
    assert image_set.images.shape == (5, 16, 16, 3) and len(image_set.class_names) == 20
    np.testing.assert_array_equal(image_set.labels, written["test"][1])


def test_stl10_and_fashion_mnist_and_imagenet_subset(tmp_path):
    fixtures.write_stl10(tmp_path / "stl", {"train": 3, "test": 2, "unlabeled": 4})
    assert len(load_image_set("stl10", "train+test", tmp_path / "stl", image_size=96)) == 5
    assert load_image_set("stl10", "unlabeled", tmp_path / "stl", image_size=96).labels is None

    fixtures.write_fashion_mnist(tmp_path / "fmnist", {"train": 6, "test": 4})
    fashion = load_image_set("fashion_mnist", "test", tmp_path / "fmnist", image_size=28)
    assert fashion.images.shape == (4, 28, 28, 1)

    subset, wnids = fixtures.write_imagenet(tmp_path / "imagenet")
    val = load_image_set("imagenet", "val", tmp_path / "imagenet", image_size=24, subset_file=subset)
    assert val.images.shape == (2, 24, 24, 3) and val.class_names == wnids


def test_users_arrays_take_the_same_path():
    images = np.random.default_rng(0).integers(0, 256, (5, 8, 8), dtype=np.uint8)
    image_set = array_image_set(images, labels=np.array([0, 1, 0, 1, 1]))
    assert image_set.images.shape == (5, 8, 8, 1) and image_set.labels.tolist() == [0, 1, 0, 1, 1]


def test_unknown_data_set_and_split_are_named():
    with pytest.raises(ValueError, match="'cifar'.*cifar10"):
        load_image_set("cifar", "train")
    with pytest.raises(ValueError, match="'train'"):
        load_image_set("digits", "train")
