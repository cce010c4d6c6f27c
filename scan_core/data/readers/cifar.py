"""Read CIFAR-10 and CIFAR-20 from torchvision's on-disk layout (the python pickles).

The pickles are read here rather than through torchvision so that copies without
torchvision's checksums (and small test fixtures) work. CIFAR-20 is CIFAR-100 labelled
with its 20 superclasses, as in the SCAN paper. Unpickling is limited to the few numpy
names the files need, so a stray pickle in the folder cannot run code.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from scan_core.data.image_set import ImageSet

CIFAR_SPLITS = ("train", "test")
_CIFAR10_DIR = "cifar-10-batches-py"
_CIFAR100_DIR = "cifar-100-python"
_CIFAR10_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how Python 3 writes bytes at pickle protocol 2
}


def read_cifar10(root: Path, split: str, download: bool = False) -> ImageSet:
    """Read CIFAR-10 (50,000 train / 10,000 test images of 32x32x3, 10 classes)."""
    root = Path(root)
    _check_split(split, "CIFAR-10")
    folder = root / _CIFAR10_DIR
    paths = [folder / name for name in [*_CIFAR10_FILES[split], "batches.meta"]]
    _ensure(paths, download, "CIFAR-10", "CIFAR10", root)
    batches = [_load(path) for path in paths[:-1]]
    images = np.concatenate([_images(batch, path) for batch, path in zip(batches, paths)])
    labels = np.concatenate([_labels(batch, "labels", path) for batch, path in zip(batches, paths)])
    names = _names(_load(paths[-1]), "label_names", paths[-1])
    return _image_set(images, labels, names, "cifar10", split)


def read_cifar20(root: Path, split: str, download: bool = False) -> ImageSet:
    """Read CIFAR-100 with its 20 coarse (superclass) labels and names."""
    root = Path(root)
    _check_split(split, "CIFAR-20")
    folder = root / _CIFAR100_DIR
    data_path, meta_path = folder / split, folder / "meta"
    _ensure([data_path, meta_path], download, "CIFAR-100", "CIFAR100", root)
    batch = _load(data_path)
    images = _images(batch, data_path)
    labels = _labels(batch, "coarse_labels", data_path)
    names = _names(_load(meta_path), "coarse_label_names", meta_path)
    return _image_set(images, labels, names, "cifar20", split)


def _check_split(split: str, dataset: str) -> None:
    if split not in CIFAR_SPLITS:
        raise ValueError(f"unknown {dataset} split {split!r}; valid: {', '.join(CIFAR_SPLITS)}")


def _ensure(
    paths: list[Path], download: bool, dataset: str, torchvision_name: str, root: Path
) -> None:
    """Fetch with torchvision when allowed and files are missing; else name what is missing."""
    if download and not all(path.is_file() for path in paths):
        import torchvision.datasets

        getattr(torchvision.datasets, torchvision_name)(str(root), download=True)
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{dataset} files missing: {', '.join(missing)}. Pass download=True to fetch them "
            "with torchvision, or extract the python version of the archive into "
            f"{root} yourself."
        )


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR file")
        return super().find_class(module, name)


def _load(path: Path) -> dict[str, Any]:
    """Unpickle a batch; keys come back as str whether written by Python 2 or 3.

    latin1 is the encoding numpy needs for arrays pickled by Python 2 (the real files).
    """
    with open(path, "rb") as handle:
        data = _NumpyOnlyUnpickler(handle, encoding="latin1").load()
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(data).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in data.items()}


def _field(batch: dict[str, Any], key: str, path: Path) -> Any:
    if key not in batch:
        raise ValueError(f"{path}: missing {key!r} (has {sorted(batch)})")
    return batch[key]


def _images(batch: dict[str, Any], path: Path) -> np.ndarray:
    """Rows of 3072 bytes (1024 red, green, blue; row-major) to ``[N, 32, 32, 3]``."""
    data = np.asarray(_field(batch, "data", path), dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{path}: expected data of shape [N, 3072], got {data.shape}")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def _labels(batch: dict[str, Any], key: str, path: Path) -> np.ndarray:
    labels = np.asarray(_field(batch, key, path), dtype=np.int64).reshape(-1)
    if len(labels) != len(_field(batch, "data", path)):
        raise ValueError(f"{path}: {len(labels)} {key} for {len(batch['data'])} images")
    return labels


def _names(meta: dict[str, Any], key: str, path: Path) -> list[str]:
    return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in _field(meta, key, path)]


def _image_set(
    images: np.ndarray, labels: np.ndarray, names: list[str], dataset: str, split: str
) -> ImageSet:
    if labels.size and (labels.min() < 0 or labels.max() >= len(names)):
        raise ValueError(f"{dataset} {split}: labels outside 0..{len(names) - 1}")
    return ImageSet(
        images=np.ascontiguousarray(images),
        labels=labels,
        class_names=names,
        sources=[f"{dataset}:{split}:{i}" for i in range(len(images))],
        split=split,
    )
