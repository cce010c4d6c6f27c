"""Writing ``images.npy`` chunk by chunk, so ``prepare`` never holds a data set's pixels.

Rows are appended to the file with ordinary writes behind a ``.npy`` header whose length
is fixed at the start (numpy leaves room in it for the first dimension to grow), and the
header gets the final row count when the writer closes. Plain writes, unlike stores into
an ``open_memmap``, leave no dirty file pages mapped into the process, so its resident
size stays at a few chunks. Per-image content digests and per-channel pixel histograms
(exact integer counts, from which the mean and standard deviation follow without a
float copy of the pixels) are taken from each chunk on its way to disk.
"""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from scan_core.data.image_set import UNKNOWN_LABEL, ImageSet
from scan_core.data.image_store import ImageStore
from scan_core.data.image_file import padded_warning
from scan_core.data.readers.folder import FileListing, check_failures, check_refused, decode_chunks, typical_side
from scan_core.data.sources import Part, check_joinable, resize_images
from scan_core.defaults import auto_image_size

CHUNK_BYTES = 16 << 20  # pixels per chunk written (and per decoding task, divided by the pool size)


def _header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                  "fortran_order": False, "shape": shape})
    return buffer.getvalue()


class NpyRowWriter:
    """Appends rows of one shape to a ``.npy`` file; ``close`` writes the row count."""

    def __init__(self, path: Path, row_shape: tuple[int, ...], dtype: np.dtype = np.dtype(np.uint8)):
        self.path, self.row_shape, self.dtype, self.count = Path(path), tuple(row_shape), np.dtype(dtype), 0
        self._handle = open(self.path, "wb")
        self._header_length = self._handle.write(_header((0, *self.row_shape), self.dtype))

    def append(self, rows: np.ndarray) -> None:
        if rows.shape[1:] != self.row_shape or rows.dtype != self.dtype:
            raise ValueError(f"rows of {rows.dtype} {rows.shape[1:]} for a file of {self.dtype} {self.row_shape}")
        self._handle.write(np.ascontiguousarray(rows).data)
        self.count += len(rows)

    def close(self) -> None:
        header = _header((self.count, *self.row_shape), self.dtype)
        if len(header) != self._header_length:  # numpy pads headers for 21 digits; never expected
            raise RuntimeError(f"the .npy header of {self.path} changed length when the row count was written")
        self._handle.seek(0)
        self._handle.write(header)
        self._handle.close()


@dataclass
class PixelStatistics:
    """Exact per-channel counts of each of the 256 pixel values, summed over chunks."""

    counts: np.ndarray  # int64 [C, 256]

    @classmethod
    def empty(cls, channels: int) -> PixelStatistics:
        return cls(np.zeros((channels, 256), dtype=np.int64))

    def add(self, images: np.ndarray) -> None:
        for channel in range(self.counts.shape[0]):
            self.counts[channel] += np.bincount(images[..., channel].ravel(), minlength=256)

    def mean_std(self) -> tuple[list[float], list[float]]:
        """Mean and (population) standard deviation of pixel values scaled to [0, 1]."""
        means, stds = [], []
        for counts in self.counts.tolist():  # Python integers: the sums below are exact
            total = sum(counts)
            first = sum(value * count for value, count in enumerate(counts))
            second = sum(value * value * count for value, count in enumerate(counts))
            total = max(total, 1)  # no training pixels: 0 and 0
            means.append(first / total / 255.0)
            stds.append(math.sqrt((second * total - first * first) / (total * total)) / 255.0)
        return means, stds


@dataclass
class WrittenImages:
    """What was written: the rows kept, in order, and their description."""

    count: int
    image_size: int
    channels: int
    native_side: int  # the first part's side before resizing (a folder's typical shorter side)
    labels: np.ndarray | None
    class_names: list[str] | None
    sources: list[str]
    in_train: np.ndarray  # bool per row: written from a part marked as training data
    content_hashes: list[str]
    mean: list[float]
    std: list[float]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # one line each, for the user


@dataclass
class _PartRows:
    sources: list[str]
    labels: np.ndarray | None
    class_names: list[str] | None
    skipped: list[tuple[str, str]]
    warnings: list[str] = field(default_factory=list)


def _hashes(images: np.ndarray) -> list[str]:
    return [hashlib.sha256(image.tobytes()).hexdigest() for image in images]


def _chunk_rows(image_size: int, channels: int, chunk_bytes: int) -> int:
    return max(1, chunk_bytes // (image_size * image_size * channels))


def _array_chunks(image_set: ImageSet, image_size: int, rows: int) -> Iterator[np.ndarray]:
    for start in range(0, len(image_set), rows):
        yield resize_images(image_set.images[start : start + rows], image_size)


def _native_side(part: Part) -> int:
    """The side of a part's images before resizing: a folder's typical shorter side, read
    from file headers only, or an array's own side."""
    if isinstance(part, FileListing):
        return typical_side(part.paths)
    return part.image_size


class _Sink:
    """Where chunks go: the file, the content digests and the training rows' statistics."""

    def __init__(self, path: Path, image_size: int, channels: int):
        self.writer = NpyRowWriter(path, (image_size, image_size, channels))
        self.hashes: list[str] = []
        self.train_statistics = PixelStatistics.empty(channels)
        self.in_train: list[np.ndarray] = []

    def add(self, images: np.ndarray, train: bool) -> None:
        self.writer.append(images)
        self.hashes += _hashes(images)
        self.in_train.append(np.full(len(images), train))
        if train:
            self.train_statistics.add(images)


def write_images(parts: Sequence[Callable[[], Part]], train: Sequence[bool], path: Path, image_size: int | None,
                 on_bad_image: str, chunk_bytes: int = CHUNK_BYTES, workers: int | None = None,
                 auto_side: Callable[[int], int] = auto_image_size) -> WrittenImages:
    """Write every part (loaded one at a time, in order) to ``path`` as ``uint8[N, S, S, C]``.

    ``image_size`` None means auto: ``auto_side`` of the first part's native side (its
    typical side before resizing, which is returned as ``native_side``). Files are decoded
    by a thread pool, chunk by chunk, in order; a folder whose good files are all grayscale
    is stored with one channel, like ``decode_images`` returns it. Unreadable files are
    listed all at once (``on_bad_image`` fail) or left out and listed (skip).
    """
    sink: _Sink | None = None
    written: list[_PartRows] = []
    seen: list[Part | _Described] = []
    all_gray = True
    native_side: int | None = None
    for load, is_train in zip(parts, train, strict=True):
        part = load()
        check_joinable([*seen, part])
        seen.append(part)
        native_side = native_side or _native_side(part)
        image_size = image_size or auto_side(native_side)
        if isinstance(part, FileListing):
            sink = sink or _Sink(path, image_size, 3)
            rows, gray = _write_files(part, sink, is_train, image_size, on_bad_image, chunk_bytes, workers)
            all_gray = all_gray and gray
            written.append(rows)
        else:
            sink = sink or _Sink(path, image_size, part.num_channels)
            for chunk in _array_chunks(part, image_size, _chunk_rows(image_size, part.num_channels, chunk_bytes)):
                sink.add(chunk, is_train)
            all_gray = False
            written.append(_PartRows(part.sources, part.labels, part.class_names, part.skipped))
        seen[-1] = _Described(part.labels is not None, part.class_names, part.split)  # drop the pixels
        del part
    assert sink is not None and native_side is not None, "write_images needs at least one part"
    sink.writer.close()
    if all_gray and sink.writer.row_shape[-1] == 3:
        sink = _to_one_channel(sink, path)
    mean, std = sink.train_statistics.mean_std()
    return WrittenImages(
        count=sink.writer.count, image_size=image_size, channels=sink.writer.row_shape[-1], native_side=native_side,
        labels=_joined_labels(written), class_names=next((rows.class_names for rows in written
                                                          if rows.labels is not None), None),
        sources=[source for rows in written for source in rows.sources],
        in_train=np.concatenate(sink.in_train) if sink.in_train else np.zeros(0, dtype=bool),
        content_hashes=sink.hashes, mean=mean, std=std,
        skipped=[item for rows in written for item in rows.skipped],
        warnings=[line for rows in written for line in rows.warnings],
    )


@dataclass
class _Described:
    """A written part as the join check of later parts sees it, without its pixels."""

    has_labels: bool
    class_names: list[str] | None
    split: str

    @property
    def labels(self) -> list | None:
        return [] if self.has_labels else None


def _write_files(listing: FileListing, sink: _Sink, train: bool, image_size: int, on_bad_image: str,
                 chunk_bytes: int, workers: int | None) -> tuple[_PartRows, bool]:
    """Decode and write ``listing``; returns its rows and whether every good file was gray."""
    check_refused(listing, on_bad_image)
    kept: list[int] = []
    failures: list[tuple[str, str]] = list(listing.refused)
    padded: list[str] = []
    gray = True
    rows_per_task = max(1, _chunk_rows(image_size, 3, chunk_bytes) // 8)
    for chunk in decode_chunks(listing.paths, listing.root, image_size, rows_per_task, workers):
        failures += chunk.failures
        padded += chunk.padded
        if failures and on_bad_image == "fail":
            continue  # keep decoding to list every bad file, but write nothing more
        kept += chunk.kept
        gray = gray and bool(chunk.gray.all())
        if len(chunk.kept):
            sink.add(chunk.images, train)
    check_failures(listing.root, len(listing) + len(listing.refused), len(kept), failures, on_bad_image)
    sources = listing.sources
    labels = None if listing.labels is None else np.array([listing.labels[i] for i in kept], dtype=np.int64)
    warnings = listing.warnings + ([padded_warning(padded)] if padded else [])
    return _PartRows([sources[i] for i in kept], labels, listing.class_names, failures, warnings), gray



def _to_one_channel(sink: _Sink, path: Path) -> _Sink:
    """Rewrite an all-grayscale file (written as three equal channels) with one channel."""
    source = ImageStore(path)
    staging = path.with_name(f".{path.name}.gray")
    gray = _Sink(staging, source.image_shape[0], 1)
    gray.in_train = sink.in_train
    in_train = np.concatenate(sink.in_train)
    rows = _chunk_rows(source.image_shape[0], 3, CHUNK_BYTES)
    for start in range(0, len(source), rows):
        chunk = np.ascontiguousarray(source[start : start + rows][..., :1])
        gray.writer.append(chunk)
        gray.hashes += _hashes(chunk)
        gray.train_statistics.add(chunk[in_train[start : start + rows]])
    gray.writer.close()
    source.close()
    staging.replace(path)
    return gray


def _joined_labels(parts: list[_PartRows]) -> np.ndarray | None:
    """Labels of every row; rows of unlabelled parts are ``UNKNOWN_LABEL`` when others have labels."""
    if all(rows.labels is None for rows in parts):
        return None
    return np.concatenate([
        rows.labels if rows.labels is not None else np.full(len(rows.sources), UNKNOWN_LABEL, dtype=np.int64)
        for rows in parts
    ])
