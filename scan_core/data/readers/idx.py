"""Read Fashion-MNIST from its IDX files.

The IDX files are parsed directly, so Debian's ``dataset-fashion-mnist`` package
(``/usr/share/datasets/fashion-mnist/*.gz``) and torchvision's download
(``<root>/FashionMNIST/raw/``) both work without torchvision checksums or network.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from scan_core.data.image_set import ImageSet

FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
_PREFIX = {"train": "train", "test": "t10k"}
# IDX type codes (third magic byte) and the big-endian numpy types they stand for.
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_fashion_mnist(root: Path, split: str, download: bool = False) -> ImageSet:
    """Read the ``train`` (60,000) or ``test`` (10,000) split as 28x28x1 images."""
    root = Path(root)
    if split not in _PREFIX:
        raise ValueError(f"unknown Fashion-MNIST split {split!r}; valid: train, test")
    names = [f"{_PREFIX[split]}-images-idx3-ubyte", f"{_PREFIX[split]}-labels-idx1-ubyte"]
    found = [_find(root, name) for name in names]
    if None in found and download:
        _download(root, split)
        found = [_find(root, name) for name in names]
    if None in found:
        raise FileNotFoundError(
            f"Fashion-MNIST {split} files not found: expected {names[0]}[.gz] and "
            f"{names[1]}[.gz] in {root} or {root / 'FashionMNIST' / 'raw'}. Install the "
            "Debian package dataset-fashion-mnist (files in /usr/share/datasets/fashion-mnist), "
            "put the files there, or pass download=True."
        )
    images_path, labels_path = found
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"{images_path}: expected uint8 [N, H, W], got {images.dtype} {images.shape}"
        )
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(
            f"{labels_path}: expected {len(images)} labels, got shape {labels.shape}"
        )
    labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= len(FASHION_MNIST_CLASSES)):
        raise ValueError(f"{labels_path}: labels outside 0..9")
    return ImageSet(
        images=np.ascontiguousarray(images[..., None]),
        labels=labels,
        class_names=list(FASHION_MNIST_CLASSES),
        sources=[f"fashion-mnist:{split}:{i}" for i in range(len(images))],
        split=split,
    )


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file (optionally gzipped): magic ``0 0 type ndim``, big-endian dims."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {data[:4].hex()})")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: IDX header truncated")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_TYPES[data[2]])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(
            f"{path}: header says {dims} ({expected} bytes) but {len(data) - header} bytes follow"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="))


def _find(root: Path, name: str) -> Path | None:
    for folder in (root, root / "FashionMNIST" / "raw"):
        for candidate in (folder / f"{name}.gz", folder / name):
            if candidate.is_file():
                return candidate
    return None


def _download(root: Path, split: str) -> None:
    """Fetch with torchvision, which stores the files in ``<root>/FashionMNIST/raw``."""
    from torchvision.datasets import FashionMNIST

    FashionMNIST(str(root), train=split == "train", download=True)
