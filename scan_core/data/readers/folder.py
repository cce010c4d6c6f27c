"""Read any directory of image files into an ``ImageSet``.

A user's own photos arrive in every size, mode and state of repair. This reader decodes
every file fully, so a broken file is found here rather than halfway through training,
and reports all broken files at once instead of one per run. The decoding helper is
shared with the ImageNet reader, which reads the same kind of files.
"""

from __future__ import annotations

import os
import sys
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from scan_core.defaults import MAX_AUTO_IMAGE_SIZE, auto_image_size
from scan_core.data.image_set import ImageSet

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
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
    paths = find_images(root)
    if not paths:
        raise FileNotFoundError(
            f"no images found in {root} (searched subfolders too; accepted extensions, "
            f"any case: {', '.join(IMAGE_EXTENSIONS)})"
        )
    relative = [path.relative_to(root) for path in paths]
    class_names = _class_names(relative)
    labels = None
    if class_names is not None:
        index = {name: i for i, name in enumerate(class_names)}
        labels = [index[path.parts[0]] for path in relative]
    return FileListing(root=root, paths=paths, labels=labels, class_names=class_names, split="all")


def decode_listing(listing: FileListing, image_size: int, on_bad_image: str) -> ImageSet:
    """Decode every file of ``listing`` into one in-memory ``ImageSet``."""
    images, kept, skipped = decode_images(listing.paths, listing.root, image_size, on_bad_image)
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


def is_image_file(name: str) -> bool:
    """Whether a file name has one of the accepted image extensions (any case)."""
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def find_images(root: Path) -> list[Path]:
    """All image files below ``root`` in sorted path order, skipping hidden entries.

    Hidden entries (``.DS_Store``, macOS ``._*`` forks, ``.ipynb_checkpoints``) are not
    the user's images and would otherwise show up as classes or bad files.
    """
    found: list[Path] = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        found.extend(Path(directory) / name for name in files if is_image_file(name))
    return sorted(found, key=lambda path: path.relative_to(root).parts)


@dataclass
class DecodedChunk:
    """Consecutive files decoded together: the good ones as ``uint8[B, S, S, 3]`` (grayscale
    files repeated into three channels, flagged in ``gray``), their positions in the file
    list, and ``(file, reason)`` for each file that failed."""

    images: np.ndarray
    gray: np.ndarray
    kept: list[int]
    failures: list[tuple[str, str]]


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
    for offset, path in enumerate(paths):
        try:
            decoded.append(decode_image(path, image_size))
        except Exception as error:  # noqa: BLE001 - any decoder failure marks the file bad
            failures.append((Path(path).relative_to(root).as_posix(), _reason(error)))
        else:
            kept.append(first + offset)
    images = np.empty((len(decoded), image_size, image_size, 3), dtype=np.uint8)
    for row, array in enumerate(decoded):
        images[row] = _to_rgb(array)
    return DecodedChunk(images, np.array([array.ndim == 2 for array in decoded], dtype=bool), kept, failures)


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


def decode_image(path: Path, image_size: int) -> np.ndarray:
    """Decode one file fully: ``uint8[S, S]`` if grayscale, else ``uint8[S, S, 3]``."""
    with Image.open(path) as image:
        image.load()
        image = _normalise_mode(image)
    return np.asarray(resize_center_crop(image, image_size), dtype=np.uint8)


def _normalise_mode(image: Image.Image) -> Image.Image:
    """Bring any PIL mode to 'L' or 'RGB', compositing transparency onto white."""
    mode = image.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        return Image.fromarray(_wide_gray_to_uint8(np.asarray(image)), mode="L")
    if mode in ("1", "L"):
        return image.convert("L")
    if mode in ("LA", "La"):
        return _on_white(image.convert("LA"), "L")
    if mode in ("RGBA", "RGBa", "PA") or (mode == "P" and "transparency" in image.info):
        return _on_white(image.convert("RGBA"), "RGB")
    return image.convert("RGB")


def _wide_gray_to_uint8(array: np.ndarray) -> np.ndarray:
    """Scale 16/32-bit or float grayscale to 0..255 (16-bit data is the common case)."""
    values = array.astype(np.float64)
    if array.dtype.kind == "f" and values.size and values.min() >= 0.0 and values.max() <= 1.0:
        values = values * 255.0
    elif values.size and values.max() > 255:
        values = values / 257.0
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _on_white(image: Image.Image, mode: str) -> Image.Image:
    """Composite an image with alpha onto a white background, then convert to ``mode``."""
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert(mode)


def resize_center_crop(image: Image.Image, size: int) -> Image.Image:
    """Resize the shorter side to ``size`` (antialiased bilinear), then crop the centre."""
    width, height = image.size
    scale = size / min(width, height)
    new_width = max(size, round(width * scale))
    new_height = max(size, round(height * scale))
    if (new_width, new_height) != (width, height):
        image = image.resize((new_width, new_height), Image.Resampling.BILINEAR)
    left = (new_width - size) // 2
    top = (new_height - size) // 2
    return image.crop((left, top, left + size, top + size))


def _to_rgb(array: np.ndarray) -> np.ndarray:
    return np.repeat(array[..., None], 3, axis=2) if array.ndim == 2 else array


def _reason(error: Exception) -> str:
    text = str(error).strip() or "no details"
    return f"{type(error).__name__}: {text}"


def _bad_image_message(root: Path, failures: list[tuple[str, str]]) -> str:
    lines = [f"{len(failures)} file(s) in {root} could not be read as images:"]
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
