"""Where images come from: one loader per ``data.name``, all returning an ``ImageSet``."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from scan_core.data import readers
from scan_core.defaults import auto_image_size
from scan_core.names import DATASET_NAMES
from scan_core.data.image_set import UNKNOWN_LABEL, ImageSet
from scan_core.data.image_file import resize_center_crop


DIGITS_SPLITS = ("all",)

ALL_SPLITS = "all"
AUTO_SPLIT = "auto"
# Every split of each data set; ``all`` joins them in this order.
DATASET_SPLITS: dict[str, tuple[str, ...]] = {
    "digits": DIGITS_SPLITS,
    "fashion_mnist": ("train", "test"),
    "cifar10": ("train", "test"),
    "cifar20": ("train", "test"),
    "stl10": ("train", "test", "unlabeled"),
    "imagenet": ("train", "val"),
    "folder": ("all",),
}
# ``auto``: the protocol of the authors' code (train on train, report on the held-out split;
# their README calls training on the full set bad practice). A data set with a single split
# trains and evaluates on it.
AUTO_SPLITS: dict[str, tuple[str, str]] = {
    "digits": ("all", "all"),
    "fashion_mnist": ("train", "test"),
    "cifar10": ("train", "test"),
    "cifar20": ("train", "test"),
    "stl10": ("train", "test"),
    "imagenet": ("train", "val"),
    "folder": ("all", "all"),
}


def _check_name(name: str) -> None:
    if name not in DATASET_SPLITS:
        raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(DATASET_NAMES)}")


def expand_split(name: str, split: str) -> str:
    """``all`` becomes every split of ``name`` joined with '+'; other values pass unchanged."""
    _check_name(name)
    if split == AUTO_SPLIT:
        raise ValueError(
            f"split {AUTO_SPLIT!r} depends on whether images are trained on or evaluated; "
            "resolve it with resolve_splits(name, train_split, eval_split) first"
        )
    return "+".join(DATASET_SPLITS[name]) if split == ALL_SPLITS else split


def resolve_splits(name: str, train_split: str, eval_split: str) -> tuple[str, str]:
    """The splits to train and evaluate on, with ``auto`` and ``all`` spelt out.

    ``auto`` is the data set's held-out protocol (``AUTO_SPLITS``: CIFAR, STL and
    Fashion-MNIST train -> test, ImageNet train -> val, digits and folders all -> all);
    ``all`` joins every split (STL-10: train+test+unlabeled).
    """
    _check_name(name)
    train, evaluate = AUTO_SPLITS[name]
    return (
        expand_split(name, train if train_split == AUTO_SPLIT else train_split),
        expand_split(name, evaluate if eval_split == AUTO_SPLIT else eval_split),
    )


def load_digits_set(split: str = "all") -> ImageSet:
    """scikit-learn's 1,797 handwritten digits (8x8, 17 grey levels), scaled to uint8."""
    from sklearn.datasets import load_digits

    if split not in DIGITS_SPLITS:
        raise ValueError(f"digits has no split {split!r}; it has only {DIGITS_SPLITS}")
    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    return ImageSet(
        images=images,
        labels=digits.target.astype(np.int64),
        class_names=[str(digit) for digit in range(10)],
        sources=[f"digits:all:{index}" for index in range(len(images))],
        split=split,
    )


def array_image_set(images: np.ndarray, labels: np.ndarray | None = None, name: str = "array") -> ImageSet:
    """Wrap a user's own ``uint8[N, H, W(, C)]`` array, the path every built-in set takes too."""
    if images.ndim == 3:
        images = images[..., None]
    return ImageSet(
        images=np.ascontiguousarray(images, dtype=np.uint8),
        labels=None if labels is None else np.asarray(labels, dtype=np.int64),
        class_names=None if labels is None else [str(label) for label in np.unique(labels)],
        sources=[f"{name}:all:{index}" for index in range(len(images))],
        split="all",
    )


def resize_images(images: np.ndarray, image_size: int) -> np.ndarray:
    """Resize every image to ``image_size`` square by the folder reader's rule (shorter side,
    then centre crop), so arrays and files of the same picture give the same pixels."""
    if images.shape[1] == image_size and images.shape[2] == image_size:
        return images
    resized = [
        np.asarray(resize_center_crop(Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image),
                                      image_size))
        for image in images
    ]
    stacked = np.stack(resized)
    return stacked[..., None] if stacked.ndim == 3 else stacked


# What one split of a data set is before it is written: images in memory (the archive
# formats torchvision reads whole), or a listing of image files still to be decoded.
Part = ImageSet | readers.FileListing


def _part_loader(name: str, root: Path, subset_file: Path | None, download: bool) -> Callable[[str], Part]:
    loaders: dict[str, Callable[[str], Part]] = {
        "digits": load_digits_set,
        "fashion_mnist": lambda split: readers.read_fashion_mnist(root, split, download=download),
        "cifar10": lambda split: readers.read_cifar10(root, split, download=download),
        "cifar20": lambda split: readers.read_cifar20(root, split, download=download),
        "stl10": lambda split: readers.read_stl10(root, split, download=download),
        "imagenet": lambda split: readers.list_imagenet(root, split, subset_file),
        "folder": lambda split: readers.list_folder(root),
    }
    if name not in loaders:
        raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(DATASET_NAMES)}")
    return loaders[name]


FOLDER_DATASETS = ("folder", "imagenet")  # data.root must be the folder holding the image files


def check_data_root(name: str, root: Path | str) -> None:
    """``data.root`` as the data set needs it, checked before any flow starts: a folder of
    images must exist and be a folder; an archive data set's root must not be a file."""
    root = Path(root)
    if name in FOLDER_DATASETS and not root.exists():
        raise FileNotFoundError(f"data.root = {root} does not exist; set it to the folder that holds the images")
    if root.exists() and not root.is_dir():
        raise ValueError(f"data.root = {root} is a file, not a folder; set it to the folder that holds the "
                         f"{'images' if name in FOLDER_DATASETS else name + ' files'}")


def split_parts(name: str, split: str, root: Path | str = "data", subset_file: Path | str | None = None,
                download: bool = False) -> list[Callable[[], Part]]:
    """One loader per split joined in ``split`` (``all`` spelt out), each reading its part only
    when called, so that ``prepare`` holds one part at a time while writing them to disk."""
    loader = _part_loader(name, Path(root), Path(subset_file) if subset_file else None, download)
    return [functools.partial(loader, part) for part in expand_split(name, split).split("+")]


def check_joinable(parts: Sequence[Part]) -> None:
    """Splits of one data set join only when those with labels name the same classes."""
    labelled = [part for part in parts if part.labels is not None]
    for part in labelled[1:]:
        if part.class_names != labelled[0].class_names:
            raise ValueError(
                f"splits {labelled[0].split!r} and {part.split!r} name different classes "
                f"({len(labelled[0].class_names or [])} vs {len(part.class_names or [])}), so their "
                "labels cannot be joined; give both splits the same class folders"
            )


def concatenate(parts: list[ImageSet], split: str) -> ImageSet:
    """Join splits of one data set (e.g. CIFAR train+test, as the paper's first version
    clusters both). When only some parts have labels (STL-10 train+unlabeled) the known
    labels are kept and the others are ``UNKNOWN_LABEL``; with none, labels are None."""
    if len(parts) == 1:
        return parts[0]
    check_joinable(parts)
    labelled = [part for part in parts if part.labels is not None]
    labels = None
    if labelled:
        labels = np.concatenate([
            part.labels if part.labels is not None else np.full(len(part), UNKNOWN_LABEL, dtype=np.int64)
            for part in parts
        ])
    return ImageSet(
        images=np.concatenate([part.images for part in parts]),
        labels=labels,
        class_names=labelled[0].class_names if labelled else None,
        sources=[source for part in parts for source in part.sources],
        split=split,
        skipped=[item for part in parts for item in part.skipped],
    )


def load_image_set(
    name: str,
    split: str,
    root: Path | str = "data",
    image_size: int | None = None,
    subset_file: Path | str | None = None,
    on_bad_image: str = "fail",
    download: bool = False,
) -> ImageSet:
    """Load ``split`` of data set ``name``; ``"train+test"`` joins splits in that order and
    ``"all"`` joins every split (``DATASET_SPLITS``). ``auto`` depends on the split's role:
    spell it out with ``resolve_splits`` first.

    Images are resized to ``image_size``, so every stage sees one size; None means auto:
    the images' own side, capped (``scan_core.defaults.auto_image_size``).
    """
    readers.check_on_bad_image(on_bad_image)
    parts = [
        readers.decode_listing(part, image_size or 0, on_bad_image) if isinstance(part, readers.FileListing) else part
        for part in (load() for load in split_parts(name, split, root, subset_file, download))
    ]
    image_set = concatenate(parts, expand_split(name, split))
    image_set.images = resize_images(image_set.images, image_size or auto_image_size(image_set.image_size))
    return image_set
