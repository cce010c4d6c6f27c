"""Reading ``images.npy`` a few rows at a time, so no stage holds all pixels in memory.

A plain ``np.load(mmap_mode="r")`` would do for the indexing, but every page a memmap has
touched stays mapped into the process: over one epoch its resident size grows to the whole
file, which is what ``/usr/bin/time -v`` and the kernel's memory accounting see. The store
reads the requested rows with ``os.preadv`` at their offsets instead: the bytes pass through
the page cache (which the kernel drops under pressure) into a fresh array of the batch's
size. Rows are read in file order, each straight into its place in the batch (rows
consecutive in both in one call), so the batch comes back in the order asked for,
duplicates included, without a second copy (``bench/memory_read.py`` compares the two).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np

def read_npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and byte offset of the data of a C-ordered ``.npy`` file."""
    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(handle)
        offset = handle.tell()
    if fortran_order:
        raise ValueError(f"{path} is stored in Fortran order; the image store reads C-ordered arrays only")
    return tuple(shape), np.dtype(dtype), offset


def _runs(rows: np.ndarray) -> Iterator[tuple[int, int, int]]:
    """``(first file row, first output position, length)`` of each stretch of ``rows`` that is
    consecutive both in the file and in the output, in file order (reads go forward)."""
    if len(rows) == 0:
        return
    positions = np.argsort(rows, kind="stable")
    ordered = rows[positions]
    breaks = np.flatnonzero((np.diff(ordered) != 1) | (np.diff(positions) != 1)) + 1
    starts = np.concatenate([[0], breaks]).tolist()
    ends = np.concatenate([breaks, [len(rows)]]).tolist()
    for start, end in zip(starts, ends):
        yield int(ordered[start]), int(positions[start]), end - start


class ImageRows:
    """Rows of a ``uint8[N, H, W, C]`` array read on demand; indexing returns numpy arrays.

    ``rows[int]`` gives one image ``[H, W, C]``; ``rows[int array]`` and ``rows[a:b]`` give
    ``[B, H, W, C]``; ``rows.rows(subset)`` is a view of some of the rows, without copying.
    """

    def __init__(self, store: ImageStore, rows: np.ndarray | None):
        self._store = store
        self._rows = rows  # positions in the file; None: all of them in order

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self._store.image_shape)

    @property
    def dtype(self) -> np.dtype:
        return self._store.dtype

    @property
    def ndim(self) -> int:
        return 1 + len(self._store.image_shape)

    def __len__(self) -> int:
        return self._store.count if self._rows is None else len(self._rows)

    def __iter__(self) -> Iterator[np.ndarray]:
        for start in range(0, len(self), 256):
            yield from self[start : start + 256]

    def _file_rows(self, index: np.ndarray) -> np.ndarray:
        count = len(self)
        if index.size and (index.min() < -count or index.max() >= count):
            raise IndexError(f"row index out of range for {count} images")
        index = np.where(index < 0, index + count, index)
        return index if self._rows is None else self._rows[index]

    def __getitem__(self, key: int | np.integer | slice | np.ndarray | list) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self._store.read(self._file_rows(np.array([int(key)])))[0]
        if isinstance(key, slice):
            index = np.arange(*key.indices(len(self)))
        else:
            index = np.asarray(key)
            if index.dtype == bool:
                if index.shape != (len(self),):
                    raise IndexError(f"boolean index of shape {index.shape} for {len(self)} images")
                index = np.flatnonzero(index)
            elif index.dtype.kind not in "iu":
                raise IndexError(f"images are indexed by integers, slices or a boolean mask, not {index.dtype}")
        return self._store.read(self._file_rows(index.astype(np.int64).reshape(-1))).reshape(
            (*index.shape, *self._store.image_shape))

    def rows(self, subset: np.ndarray) -> ImageRows:
        """A view of rows ``subset`` of this one (numbered from 0 in the view)."""
        subset = np.asarray(subset)
        if subset.dtype == bool:
            subset = np.flatnonzero(subset)
        return ImageRows(self._store, self._file_rows(subset.astype(np.int64).reshape(-1)))

    def __array__(self, dtype: np.dtype | None = None, copy: bool | None = None) -> np.ndarray:
        """Every row at once: for small sets and tests only, since it holds all pixels."""
        array = self[:]
        return array if dtype is None else array.astype(dtype)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._store.path}, shape={self.shape})"


class ImageStore(ImageRows):
    """``images.npy`` opened for reading rows at their offsets (see the module docstring)."""

    def __init__(self, path: Path | str):
        self._fd: int | None = None
        self.path = Path(path)
        shape, self._dtype, self._offset = read_npy_header(self.path)
        if len(shape) < 1:
            raise ValueError(f"{self.path} holds a scalar, not rows of images")
        self.count, self.image_shape = shape[0], shape[1:]
        self.row_bytes = int(np.prod(self.image_shape, dtype=np.int64)) * self._dtype.itemsize
        expected = self._offset + self.count * self.row_bytes
        if self.path.stat().st_size < expected:
            raise ValueError(f"{self.path} is truncated: {self.path.stat().st_size} bytes, expected {expected}")
        self._rows = None

    @property
    def _store(self) -> ImageStore:
        return self

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    def _descriptor(self) -> int:
        # Opened lazily, so a store handed to another process opens its own descriptor.
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        return self._fd

    def read(self, file_rows: np.ndarray) -> np.ndarray:
        """Rows ``file_rows`` (in range, any order, repeats allowed) as ``[B, *image_shape]``,
        each read straight into its place in the result, in file order."""
        out = np.empty((len(file_rows), *self.image_shape), dtype=self._dtype)
        buffer = memoryview(out.reshape(-1).view(np.uint8))
        fd, size = self._descriptor(), self.row_bytes
        for first, position, length in _runs(file_rows):
            self._read_exactly(fd, buffer[position * size : (position + length) * size], self._offset + first * size)
        return out

    def _read_exactly(self, fd: int, buffer: memoryview, offset: int) -> None:
        done = 0
        while done < len(buffer):
            got = os.preadv(fd, [buffer[done:]], offset + done)
            if got == 0:
                raise OSError(f"{self.path} ended early at byte {offset + done}")
            done += got

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        self.close()

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fd": None}
