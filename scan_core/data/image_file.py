"""The one way an image file becomes pixels, for ``prepare``, ``scan-predict`` and the report.

A file is decoded, turned the way its EXIF orientation says (as every viewer shows it),
brought to 8-bit grayscale or RGB by fixed rules (16-bit data divided by 257, transparency
composited onto white), and made square at the working side. What is scaled is at most
three times the square (an extreme aspect ratio is cut to 3:1 first), so memory follows the
file's own pixels, never its aspect ratio: a 1 x 500,000 strip costs what its 500,000
pixels cost. Files with more pixels than Pillow's decompression-bomb limit are refused by
Pillow itself, naming the file. docs/images.md states every rule.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, ImageOps, ImageStat

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
HEIF_EXTENSIONS = (".heic", ".heif")
MAX_ASPECT_RATIO = 3.0  # beyond it the centre 3:1 part is kept whole and padded, not cropped


@dataclass(frozen=True)
class DecodedFile:
    """One file at the working side: ``uint8[S, S]`` (grayscale) or ``uint8[S, S, 3]``, and
    whether its aspect ratio was beyond ``MAX_ASPECT_RATIO`` (so it was padded)."""

    pixels: np.ndarray
    padded: bool


@functools.cache
def heif_readable() -> bool:
    """Whether HEIC/HEIF files can be read here: only with the optional ``pillow-heif``."""
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        return False
    register_heif_opener()
    return True


def readable_extensions() -> tuple[str, ...]:
    return IMAGE_EXTENSIONS + HEIF_EXTENSIONS if heif_readable() else IMAGE_EXTENSIONS


def has_extension(name: str, extensions: tuple[str, ...]) -> bool:
    """Whether a file name ends in one of ``extensions`` (any case) and is not hidden."""
    return name.lower().endswith(extensions) and not name.startswith(".")


def is_storable_name(name: str) -> bool:
    """Whether a file name is valid UTF-8, as Parquet and JSON need. Names from old disks
    and archives often are not; Python hands them over with surrogate escapes."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable_name(name: str) -> str:
    """A file name as text that can always be printed: invalid bytes shown as ``\\xff``."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


@contextmanager
def open_oriented(path: Path | str) -> Iterator[Image.Image]:
    """The decoded image, turned as its EXIF orientation says (phone photos held sideways)."""
    with Image.open(path) as image:
        image.load()
        yield ImageOps.exif_transpose(image)


def decode_file(path: Path | str, image_size: int) -> DecodedFile:
    """Decode one file fully and bring it to ``image_size`` square (``square_image``)."""
    with open_oriented(path) as image:
        image = to_gray_or_rgb(image)
    square, padded = square_image(image, image_size)
    return DecodedFile(np.asarray(square, dtype=np.uint8), padded)


def to_gray_or_rgb(image: Image.Image) -> Image.Image:
    """Bring any PIL mode to 'L' or 'RGB', compositing transparency onto white."""
    mode = image.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        return Image.fromarray(wide_gray_to_uint8(np.asarray(image), mode), mode="L")
    if mode in ("1", "L"):
        return image.convert("L")
    if mode in ("LA", "La"):
        return _on_white(image.convert("LA"), "L")
    if mode in ("RGBA", "RGBa", "PA") or (mode == "P" and "transparency" in image.info):
        return _on_white(image.convert("RGBA"), "RGB")
    return image.convert("RGB")


def wide_gray_to_uint8(array: np.ndarray, mode: str) -> np.ndarray:
    """One fixed mapping per format, the same for every image: 16-bit (and Pillow's 32-bit
    'I', which is how some readers hand over 16-bit files) 0..65535 divided by 257; float
    0..1 times 255. Values outside the range saturate."""
    values = array.astype(np.float64)
    scaled = values * 255.0 if mode == "F" else np.clip(values, 0, 65535) / 257.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _on_white(image: Image.Image, mode: str) -> Image.Image:
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert(mode)


def name_list(names: list[str], shown: int = 10) -> str:
    """``a, b, c and 7 more``: the first ``shown`` names of a warning line."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def padded_warning(names: list[str]) -> str:
    """The one line that says which images were padded for their aspect ratio."""
    return (f"{len(names)} image(s) with an aspect ratio beyond {MAX_ASPECT_RATIO:g}:1 were padded to a square "
            f"(their centre {MAX_ASPECT_RATIO:g}:1 part kept whole; docs/images.md): {name_list(names)}")


def is_extreme(width: int, height: int) -> bool:
    return max(width, height) > MAX_ASPECT_RATIO * min(width, height)


def square_image(image: Image.Image, size: int) -> tuple[Image.Image, bool]:
    """``size`` square: up to 3:1 the shorter side is scaled to ``size`` and the centre
    cut; beyond it the centre 3:1 part is kept whole on a square of its mean colour (a
    centre square of a 16 x 4000 scan would keep 0.4 % of it). Returns whether it was padded."""
    if is_extreme(*image.size):
        return _pad_centre_part(image, size), True
    return resize_center_crop(image, size), False


def resize_center_crop(image: Image.Image, size: int) -> Image.Image:
    """Scale the shorter side to ``size`` (bilinear, antialiased), then cut the centre. Called
    up to 3:1 only, so the scaled image is at most three times the square."""
    width, height = image.size
    scale = size / min(width, height)
    new_width = max(size, round(width * scale))
    new_height = max(size, round(height * scale))
    if (new_width, new_height) != (width, height):
        image = image.resize((new_width, new_height), Image.Resampling.BILINEAR)
    left = (new_width - size) // 2
    top = (new_height - size) // 2
    return image.crop((left, top, left + size, top + size))


def _pad_centre_part(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    short = min(width, height)
    long = min(max(width, height), round(MAX_ASPECT_RATIO * short))
    part_width, part_height = (long, short) if width >= height else (short, long)
    left, top = (width - part_width) // 2, (height - part_height) // 2
    across = max(1, round(size * short / long))
    target = (size, across) if width >= height else (across, size)
    part = image.resize(target, Image.Resampling.BILINEAR, box=(left, top, left + part_width, top + part_height))
    fill = tuple(round(value) for value in ImageStat.Stat(part).mean)
    square = Image.new(image.mode, (size, size), fill if len(fill) > 1 else fill[0])
    square.paste(part, ((size - target[0]) // 2, (size - target[1]) // 2))
    return square
