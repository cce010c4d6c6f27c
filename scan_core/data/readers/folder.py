"""Read any directory of image files into an ``ImageSet``.

A user's own photos arrive in every size, mode and state of repair. This reader decodes
every file fully, so a broken file is found here rather than halfway through training,
and reports all broken files at once instead of one per run. How one file is decoded is
``scan_core.data.image_file``'s, how files are found ``scan_core.data.image_search``'s;
the ImageNet reader and ``scan-predict`` use both too.
"""

from __future__ import annotations

import os
import sys
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from scan_core.data.image_file import decode_file, printable_name, readable_extensions
from scan_core.data.image_search import find_images
from scan_core.data.image_set import ImageSet
from scan_core.defaults import MAX_AUTO_IMAGE_SIZE, auto_image_size

ON_BAD_IMAGE_CHOICES = ("fail", "skip")
_PROGRESS_MIN_FILES = 200


class BadImageError(ValueError):
    """One or more files could not be decoded as images."""


@dataclass
class FileListing:
    """Image files a reader found, before any is decoded: ``prepare`` streams these to disk
    chunk by chunk; ``decode_listing`` reads them into memory."""

    root: Path
    paths: list[Path]
    labels: list[int] | None  # one per path, or None when the layout names no classes
    class_names: list[str] | None
    split: str
    refused: list[tuple[str, str]] = field(default_factory=list)  # (name, reason): unusable before decoding
    warnings: list[str] = field(default_factory=list)  # one line each: what the search left out or followed

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def sources(self) -> list[str]:
        return [path.relative_to(self.root).as_posix() for path in self.paths]


def read_folder(root: Path, image_size: int, on_bad_image: str = "fail") -> ImageSet:
    """Read every image below ``root``; first-level subfolders become classes."""
    check_on_bad_image(on_bad_image)
    return decode_listing(list_folder(root), image_size, on_bad_image)


def list_folder(root: Path) -> FileListing:
    """Every image file below ``root``; first-level subfolders become classes.

    Labels are given only when every image lies in a first-level subfolder and there are
    at least two of them, since a single folder or loose files say nothing about classes.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"image folder {root} does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a folder of images")
    search = find_images(root)
    paths, refused = search.storable()
    if not search.paths:
        raise FileNotFoundError(" ".join([no_images_message(root), *search.warnings()]))
    relative = [path.relative_to(root) for path in paths]
    class_names = _class_names(relative)
    labels = None
    if class_names is not None:
        index = {name: i for i, name in enumerate(class_names)}
        labels = [index[path.parts[0]] for path in relative]
    return FileListing(root=root, paths=paths, labels=labels, class_names=class_names, split="all",
                       refused=refused, warnings=search.warnings())


def no_images_message(folder: Path, kind: str = "") -> str:
    return (f"no images found in {kind}{printable_name(str(folder))} (searched subfolders too; accepted extensions, "
            f"any case: {', '.join(readable_extensions())})")


def decode_listing(listing: FileListing, image_size: int, on_bad_image: str) -> ImageSet:
    """Decode every file of ``listing`` into one in-memory ``ImageSet``."""
    check_refused(listing, on_bad_image)
    images, kept, skipped = decode_images(listing.paths, listing.root, image_size, on_bad_image)
    skipped = listing.refused + skipped
    sources = listing.sources
    return ImageSet(
        images=images,
        labels=None if listing.labels is None else np.array([listing.labels[i] for i in kept], dtype=np.int64),
        class_names=listing.class_names,
        sources=[sources[i] for i in kept],
        split=listing.split,
        skipped=skipped,
    )


def check_on_bad_image(on_bad_image: str) -> None:
    """Reject a misspelt policy before any file is read."""
    if on_bad_image not in ON_BAD_IMAGE_CHOICES:
        raise ValueError(
            f"on_bad_image must be one of {', '.join(ON_BAD_IMAGE_CHOICES)}, "
            f"got {on_bad_image!r}"
        )


def check_refused(listing: FileListing, on_bad_image: str) -> None:
    """Under ``fail``, stop on names that cannot be stored before any file is decoded."""
    if listing.refused and on_bad_image == "fail":
        raise BadImageError(_bad_image_message(listing.root, listing.refused))


@dataclass
class DecodedChunk:
    """Consecutive files decoded together: the good ones as ``uint8[B, S, S, 3]`` (grayscale
    files repeated into three channels, flagged in ``gray``), their positions in the file
    list, ``(file, reason)`` for each file that failed, and the files padded for their
    aspect ratio."""

    images: np.ndarray
    gray: np.ndarray
    kept: list[int]
    failures: list[tuple[str, str]]
    padded: list[str] = field(default_factory=list)


def default_decoders() -> int:
    """Decoder threads: the CPUs this process may use, at most 8."""
    return max(1, min(8, len(os.sched_getaffinity(0))))


def decode_chunks(paths: Sequence[Path], root: Path, image_size: int, chunk_rows: int = 64,
                  workers: int | None = None) -> Iterator[DecodedChunk]:
    """Decode ``paths`` (``image_size`` > 0) in chunks of ``chunk_rows`` files, by a pool of
    threads (Pillow's decoders and resizing run without the GIL), yielding chunks in file
    order. At most twice as many chunks as threads are decoded ahead of the consumer, so
    memory stays bounded however many files there are."""
    if image_size <= 0:
        raise ValueError(f"image_size must be positive here, got {image_size}")
    workers = workers or default_decoders()
    starts = range(0, len(paths), chunk_rows)
    show = len(paths) >= _PROGRESS_MIN_FILES and sys.stderr.isatty()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scan-decode") as pool, \
            tqdm(total=len(paths), desc="decoding images", unit="img", disable=not show) as progress:
        pending: deque[Future[DecodedChunk]] = deque()
        for start in starts:
            pending.append(pool.submit(_decode_chunk, paths[start : start + chunk_rows], start, root, image_size))
            if len(pending) >= 2 * workers:
                chunk = pending.popleft().result()
                progress.update(len(chunk.kept) + len(chunk.failures))
                yield chunk
        while pending:
            chunk = pending.popleft().result()
            progress.update(len(chunk.kept) + len(chunk.failures))
            yield chunk


def _decode_chunk(paths: Sequence[Path], first: int, root: Path, image_size: int) -> DecodedChunk:
    decoded: list[np.ndarray] = []
    kept: list[int] = []
    failures: list[tuple[str, str]] = []
    padded: list[str] = []
    for offset, path in enumerate(paths):
        name = printable_name(Path(path).relative_to(root).as_posix())
        try:
            file = decode_file(path, image_size)
        except Exception as error:  # noqa: BLE001 - any decoder failure marks the file bad
            failures.append((name, reason(error)))
        else:
            decoded.append(file.pixels)
            kept.append(first + offset)
            if file.padded:
                padded.append(name)
    images = np.empty((len(decoded), image_size, image_size, 3), dtype=np.uint8)
    for row, array in enumerate(decoded):
        images[row] = _to_rgb(array)
    return DecodedChunk(images, np.array([array.ndim == 2 for array in decoded], dtype=bool), kept, failures,
                        padded)


def resolve_image_size(paths: Sequence[Path], image_size: int) -> int:
    """``image_size``, or for 0 (auto) the files' typical side, capped (``scan_core.defaults``)."""
    if image_size < 0:
        raise ValueError(f"image_size must be positive (or 0 for auto), got {image_size}")
    return image_size or auto_image_size(typical_side(paths))


def decode_images(
    paths: Sequence[Path], root: Path, image_size: int, on_bad_image: str
) -> tuple[np.ndarray, list[int], list[tuple[str, str]]]:
    """Decode, resize and stack ``paths``; return images, kept indices and failures.

    ``image_size`` 0 means auto: the files' typical side, capped (``scan_core.defaults``).
    Images come back with one channel when every good file is grayscale, else three.
    With ``on_bad_image="fail"`` any failure raises ``BadImageError`` listing them all.
    """
    check_on_bad_image(on_bad_image)
    chunks = list(decode_chunks(paths, root, resolve_image_size(paths, image_size)))
    kept = [index for chunk in chunks for index in chunk.kept]
    failures = [failure for chunk in chunks for failure in chunk.failures]
    check_failures(root, len(paths), len(kept), failures, on_bad_image)
    images = np.concatenate([chunk.images for chunk in chunks])
    if all(chunk.gray.all() for chunk in chunks):
        images = np.ascontiguousarray(images[..., :1])
    return images, kept, failures


def check_failures(root: Path, total: int, kept: int, failures: list[tuple[str, str]], on_bad_image: str) -> None:
    """Raise ``BadImageError`` for failures under ``fail``, or when no file could be read."""
    if failures and on_bad_image == "fail":
        raise BadImageError(_bad_image_message(root, failures))
    if not kept:
        raise BadImageError(f"none of the {total} image files in {root} could be read")


def typical_side(paths: Sequence[Path], sample: int = 256) -> int:
    """Median shorter side of up to ``sample`` evenly spread files, read from headers only.
    Files that cannot be opened are left to the decoder to report."""
    step = max(1, len(paths) // sample)
    sides = []
    for path in list(paths)[::step][:sample]:
        try:
            with Image.open(path) as image:
                sides.append(min(image.size))
        except Exception:  # noqa: BLE001 - reported with a reason by decode_images
            continue
    return int(np.median(sides)) if sides else MAX_AUTO_IMAGE_SIZE


def _to_rgb(array: np.ndarray) -> np.ndarray:
    return np.repeat(array[..., None], 3, axis=2) if array.ndim == 2 else array


def reason(error: Exception) -> str:
    """Why a file could not be read, in one line: the error's kind and message."""
    text = " ".join(str(error).split()) or "no details"
    return f"{type(error).__name__}: {printable_name(text)}"


def _bad_image_message(root: Path, failures: list[tuple[str, str]]) -> str:
    lines = [f"{len(failures)} file(s) in {printable_name(str(root))} could not be read as images:"]
    lines += [f"  {source}: {reason}" for source, reason in failures]
    lines.append(
        "Fix or remove them, or set `data.on_bad_image: skip` to leave them out "
        "(they are then listed as skipped)."
    )
    return "\n".join(lines)


def _class_names(relative: Sequence[Path]) -> list[str] | None:
    """Sorted first-level folder names, or None when the layout does not name classes."""
    if any(len(path.parts) < 2 for path in relative):
        return None
    names = sorted({path.parts[0] for path in relative})
    return names if len(names) >= 2 else None
