"""Write tiny data sets in each real on-disk format, so readers are tested on true layouts.

Every writer returns what a correct reader must give back (images as ``[N, H, W, C]``
uint8 and labels), so tests compare against the source, not against the reader.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer",
                 "dog", "frog", "horse", "ship", "truck"]
CIFAR20_NAMES = [f"super_{i}" for i in range(20)]
STL10_NAMES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]


def random_images(rng: np.random.Generator, count: int, size: int, channels: int) -> np.ndarray:
    return rng.integers(0, 256, size=(count, size, size, channels), dtype=np.uint8)


# --- pickles -------------------------------------------------------------------------------


def py2_pickle(obj: object) -> bytes:
    """Pickle like Python 2's cPickle did for the real CIFAR files (py2 str, numpy.core)."""
    return b"\x80\x02" + _py2(obj) + b"."


def _py2_str(value: str | bytes) -> bytes:
    raw = value.encode("latin1") if isinstance(value, str) else value
    if len(raw) < 256:
        return b"U" + bytes([len(raw)]) + raw
    return b"T" + struct.pack("<i", len(raw)) + raw


def _py2_int(value: int) -> bytes:
    if 0 <= value < 256:
        return b"K" + bytes([value])
    return b"J" + struct.pack("<i", value)


def _py2(obj: object) -> bytes:
    if isinstance(obj, dict):
        body = b"".join(_py2(k) + _py2(v) for k, v in obj.items())
        return b"}(" + body + b"u"
    if isinstance(obj, list):
        return b"](" + b"".join(_py2(v) for v in obj) + b"e"
    if isinstance(obj, (str, bytes)):
        return _py2_str(obj)
    if isinstance(obj, (int, np.integer)):
        return _py2_int(int(obj))
    if isinstance(obj, np.ndarray):
        assert obj.dtype == np.uint8 and obj.flags.c_contiguous
        shape = b"(" + b"".join(_py2_int(d) for d in obj.shape) + b"t"
        dtype = (b"cnumpy\ndtype\n" + _py2_str("u1") + b"K\x00K\x01\x87R"
                 + b"(K\x03" + _py2_str("|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb")
        state = b"(K\x01" + shape + dtype + b"\x89" + _py2_str(obj.tobytes()) + b"t"
        return (b"cnumpy.core.multiarray\n_reconstruct\n" + b"cnumpy\nndarray\n"
                + b"K\x00\x85" + _py2_str("b") + b"\x87R" + state + b"b")
    raise TypeError(type(obj))


def _dump(path: Path, obj: dict, py2: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if py2:
        obj = {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}
        path.write_bytes(py2_pickle(obj))
    else:
        path.write_bytes(pickle.dumps(obj))


def _cifar_rows(images: np.ndarray) -> np.ndarray:
    """[N, 32, 32, 3] -> the on-disk [N, 3072]: all red, then green, then blue, row-major."""
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(len(images), -1))


def write_cifar10(root: Path, per_batch: int = 2, py2: bool = False, seed: int = 0) -> dict:
    """``<root>/cifar-10-batches-py``: data_batch_1..5, test_batch, batches.meta."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    out: dict = {}
    for split, names in (("train", [f"data_batch_{i}" for i in range(1, 6)]),
                         ("test", ["test_batch"])):
        images, labels = [], []
        for name in names:
            batch_images = random_images(rng, per_batch, 32, 3)
            batch_labels = [int(v) for v in rng.integers(0, 10, per_batch)]
            _dump(folder / name, {b"batch_label": name.encode(), b"labels": batch_labels,
                                  b"data": _cifar_rows(batch_images),
                                  b"filenames": [b"x.png"] * per_batch}, py2)
            images.append(batch_images)
            labels += batch_labels
        out[split] = (np.concatenate(images), np.array(labels, dtype=np.int64))
    meta = {b"label_names": [n.encode() for n in CIFAR10_NAMES], b"num_cases_per_batch": per_batch,
            b"num_vis": 3072}
    _dump(folder / "batches.meta", meta, py2)
    return out


def write_cifar100(root: Path, count: int = 5, py2: bool = False, seed: int = 1) -> dict:
    """``<root>/cifar-100-python``: train, test (fine and coarse labels) and meta."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    out: dict = {}
    for split in ("train", "test"):
        images = random_images(rng, count, 32, 3)
        coarse = [int(v) for v in rng.integers(0, 20, count)]
        fine = [int(v) for v in rng.integers(0, 100, count)]
        _dump(folder / split, {b"filenames": [b"x.png"] * count, b"batch_label": split.encode(),
                               b"fine_labels": fine, b"coarse_labels": coarse,
                               b"data": _cifar_rows(images)}, py2)
        out[split] = (images, np.array(coarse, dtype=np.int64))
    _dump(folder / "meta", {b"fine_label_names": [f"fine_{i}".encode() for i in range(100)],
                            b"coarse_label_names": [n.encode() for n in CIFAR20_NAMES]}, py2)
    return out


# --- STL-10 and IDX ------------------------------------------------------------------------


def write_stl10(root: Path, counts: dict[str, int], seed: int = 2) -> dict:
    """``<root>/stl10_binary``: {split}_X.bin column-major, {split}_y.bin 1..10, class_names."""
    rng = np.random.default_rng(seed)
    folder = root / "stl10_binary"
    folder.mkdir(parents=True, exist_ok=True)
    out: dict = {}
    for split, count in counts.items():
        images = random_images(rng, count, 96, 3)
        # On disk each image is channel by channel, each channel column by column.
        images.transpose(0, 3, 2, 1).tofile(folder / f"{split}_X.bin")
        labels = rng.integers(0, 10, count).astype(np.int64)
        if split != "unlabeled":
            (labels + 1).astype(np.uint8).tofile(folder / f"{split}_y.bin")
        out[split] = (images, labels)
    (folder / "class_names.txt").write_text("\n".join(STL10_NAMES) + "\n")
    return out


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX: two zero bytes, type 0x08 (ubyte), ndim, big-endian uint32 dims, then data."""
    assert array.dtype == np.uint8
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_fashion_mnist(folder: Path, counts: dict[str, int], gz: bool = True,
                        seed: int = 3) -> dict:
    """The four Fashion-MNIST IDX files (``train-*``, ``t10k-*``) in ``folder``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out: dict = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = rng.integers(0, 256, (counts[split], 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, counts[split]).astype(np.uint8)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            data = idx_bytes(array)
            name = f"{prefix}-{kind}-ubyte"
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (folder / name).write_bytes(data)
        out[split] = (images[..., None], labels.astype(np.int64))
    return out


# --- image files ---------------------------------------------------------------------------


def save(path: Path, image: Image.Image, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format=fmt)
    return path


def solid(value: int | tuple, size: tuple[int, int] = (8, 8), mode: str = "RGB") -> Image.Image:
    return Image.new(mode, size, value)


def write_imagenet(root: Path, size: tuple[int, int] = (40, 30)) -> tuple[Path, list[str]]:
    """``<root>/{train,val}/<wnid>/*.JPEG`` for three wnids and a subset file naming two."""
    wnids = ["n01558993", "n01440764", "n02009912"]
    for split, per_class in (("train", 2), ("val", 1)):
        for c, wnid in enumerate(wnids):
            for i in range(per_class):
                name = f"{wnid}_{i}.JPEG" if split == "train" else f"ILSVRC2012_val_{c}{i}.JPEG"
                save(root / split / wnid / name, solid((40 * c + 20, 10 * i, 200), size), "JPEG")
    subset = root / "subset.txt"
    # Unsorted, with comment, blank line and names after the wnid as in SCAN's lists.
    subset.write_text("# two classes\nn01558993 robin, American robin\n\nn01440764 tench\n")
    return subset, ["n01440764", "n01558993"]


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG")
    return buffer.getvalue()


def write_bad_files(folder: Path) -> list[str]:
    """Five broken files with image extensions; returns their names."""
    folder.mkdir(parents=True, exist_ok=True)
    noisy = Image.fromarray(np.random.default_rng(4).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    png, jpeg = png_bytes(noisy), jpeg_bytes(noisy)
    files = {
        "empty.png": b"",
        "truncated.png": png[: len(png) // 2],
        "truncated.jpg": jpeg[: len(jpeg) // 2],
        "random.jpg": np.random.default_rng(5).integers(0, 256, 2000, dtype=np.uint8).tobytes(),
        "notes.png": b"this is a text file, not an image\n",
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return sorted(files)
