"""Which splits a run trains and evaluates on: `auto` is the held-out protocol, `all` every
split, and labeled and unlabeled splits mix with the known labels kept."""

from __future__ import annotations

import numpy as np
import pytest

from scan_core.data.image_set import UNKNOWN_LABEL
from scan_core.data.readers import BadImageError
from scan_core.data.sources import array_image_set, concatenate, load_image_set, resolve_splits
from tests.data import format_fixtures as fixtures


def test_stl10_train_plus_unlabeled_keeps_the_train_labels(tmp_path):
    written = fixtures.write_stl10(tmp_path, {"train": 3, "test": 2, "unlabeled": 4})
    image_set = load_image_set("stl10", "train+unlabeled", tmp_path, image_size=96)
    assert len(image_set) == 7 and image_set.class_names == fixtures.STL10_NAMES
    np.testing.assert_array_equal(image_set.labels[:3], written["train"][1])
    assert image_set.labels[3:].tolist() == [UNKNOWN_LABEL] * 4
    np.testing.assert_array_equal(image_set.images[3:], written["unlabeled"][0])


def test_unlabeled_part_first_marks_only_its_rows_unknown():
    images = np.zeros((5, 4, 4), dtype=np.uint8)
    unlabeled = array_image_set(images[:2], name="a")
    labeled = array_image_set(images[2:], labels=np.array([1, 0, 1]), name="b")
    joined = concatenate([unlabeled, labeled], "a+b")
    assert joined.labels.tolist() == [-1, -1, 1, 0, 1] and joined.class_names == ["0", "1"]
    assert concatenate([unlabeled, unlabeled], "a+a").labels is None


def test_splits_naming_different_classes_are_not_joined(tmp_path):
    fixtures.write_imagenet(tmp_path)
    fixtures.save(tmp_path / "val" / "n09999999" / "extra.JPEG", fixtures.solid((1, 2, 3)), "JPEG")
    with pytest.raises(ValueError, match="different classes"):
        load_image_set("imagenet", "train+val", tmp_path, image_size=8)


@pytest.mark.parametrize("name, expected", [
    ("cifar10", ("train", "test")),
    ("cifar20", ("train", "test")),
    ("stl10", ("train", "test")),
    ("fashion_mnist", ("train", "test")),
    ("imagenet", ("train", "val")),
    ("digits", ("all", "all")),
    ("folder", ("all", "all")),
])
def test_auto_is_the_authors_held_out_protocol(name, expected):
    assert resolve_splits(name, "auto", "auto") == expected


def test_all_joins_every_split_and_explicit_splits_pass_unchanged():
    assert resolve_splits("cifar10", "all", "test") == ("train+test", "test")
    assert resolve_splits("stl10", "all", "all") == ("train+test+unlabeled",) * 2
    # The paper's first version (full data) and STL's pretext images stay expressible.
    assert resolve_splits("cifar20", "train+test", "train+test") == ("train+test", "train+test")
    assert resolve_splits("stl10", "train+unlabeled", "auto") == ("train+unlabeled", "test")
    with pytest.raises(ValueError, match="'cifar'"):
        resolve_splits("cifar", "auto", "auto")


def test_load_all_is_every_split_and_auto_needs_a_role(tmp_path):
    written = fixtures.write_cifar10(tmp_path)
    everything = load_image_set("cifar10", "all", tmp_path, image_size=32)
    assert everything.split == "train+test"
    np.testing.assert_array_equal(everything.labels, np.concatenate([written["train"][1], written["test"][1]]))
    with pytest.raises(ValueError, match="resolve_splits"):
        load_image_set("cifar10", "auto", tmp_path, image_size=32)
    assert len(load_image_set("digits", "all")) == 1797


def _imagenet_with_a_corrupt_file(root):
    subset, wnids = fixtures.write_imagenet(root)
    (root / "train" / "n01440764" / "n01440764_broken.JPEG").write_bytes(b"not a JPEG at all")
    return subset, wnids


def test_imagenet_on_bad_image_fail_lists_the_corrupt_file(tmp_path):
    subset, _ = _imagenet_with_a_corrupt_file(tmp_path)
    with pytest.raises(BadImageError, match="train/n01440764/n01440764_broken.JPEG"):
        load_image_set("imagenet", "train", tmp_path, image_size=8, subset_file=subset, on_bad_image="fail")


def test_imagenet_on_bad_image_skip_drops_the_corrupt_file(tmp_path):
    subset, wnids = _imagenet_with_a_corrupt_file(tmp_path)
    image_set = load_image_set("imagenet", "train", tmp_path, image_size=8, subset_file=subset,
                               on_bad_image="skip")
    assert image_set.class_names == wnids and len(image_set) == 4
    assert "train/n01440764/n01440764_broken.JPEG" not in image_set.sources
    assert image_set.labels.tolist() == [0, 0, 1, 1]
    assert [source for source, _ in image_set.skipped] == ["train/n01440764/n01440764_broken.JPEG"]
