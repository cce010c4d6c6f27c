"""Finding the image files below a folder, for ``prepare`` and ``scan-predict`` alike.

Folder links are followed, each real folder once, so a link that leads back into the tree
(a loop) or to a folder already searched neither hangs the search nor repeats images; such
links, links that lead outside the folder, HEIC files that cannot be read here, and file
names that are not valid UTF-8 are reported in one line each rather than dropped silently.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from scan_core.data.image_file import (HEIF_EXTENSIONS, has_extension, is_storable_name, name_list,
                                       printable_name, readable_extensions)


@dataclass
class ImageSearch:
    """What a search found: image files in sorted path order, and what it left out or followed."""

    root: Path
    paths: list[Path] = field(default_factory=list)
    unreadable_heif: list[Path] = field(default_factory=list)
    loops: list[Path] = field(default_factory=list)  # folder links not followed: folder already searched
    outside: list[Path] = field(default_factory=list)  # links followed to outside ``root``

    def storable(self) -> tuple[list[Path], list[tuple[str, str]]]:
        """The paths whose names can be stored, and (printable name, reason) for the others."""
        kept, refused = [], []
        for path in self.paths:
            if is_storable_name(str(path)):
                kept.append(path)
            else:
                refused.append((self.name(path), "file name is not valid UTF-8; rename it (e.g. with convmv)"))
        return kept, refused

    def name(self, path: Path) -> str:
        return printable_name(path.relative_to(self.root).as_posix())

    def warnings(self) -> list[str]:
        """One line per kind of thing left out or followed out of the folder."""
        lines = []
        if self.unreadable_heif:
            lines.append(f"{len(self.unreadable_heif)} HEIC/HEIF file(s) not read (install pillow-heif to read "
                         f"them: pip install pillow-heif): {self._shown(self.unreadable_heif)}")
        if self.loops:
            lines.append(f"{len(self.loops)} folder link(s) not followed: they lead to a folder already "
                         f"searched (a loop): {self._shown(self.loops, targets=True)}")
        if self.outside:
            lines.append(f"{len(self.outside)} link(s) lead outside {printable_name(str(self.root))} and were "
                         f"followed: {self._shown(self.outside, targets=True)}")
        return lines

    def _shown(self, paths: list[Path], targets: bool = False) -> str:
        return name_list([self.name(path) + (_link_target(path) if targets else "") for path in paths])


def find_images(root: Path) -> ImageSearch:
    """Every image file below ``root``, skipping hidden entries (``.DS_Store``, ``._*``
    forks, ``.ipynb_checkpoints``: not the user's images), following folder links once."""
    root = Path(root)
    search = ImageSearch(root)
    real_root = os.path.realpath(root)
    searched = {_identity(root)}
    extensions = readable_extensions()
    for directory, subdirs, files in os.walk(root, followlinks=True):
        followed = []
        for name in sorted(d for d in subdirs if not d.startswith(".")):
            path = Path(directory) / name
            identity = _identity(path)
            if identity is None or identity in searched:
                search.loops.append(path)
                continue
            searched.add(identity)
            followed.append(name)
            _note_outside(search, path, real_root)
        subdirs[:] = followed
        for name in files:
            path = Path(directory) / name
            if has_extension(name, extensions):
                search.paths.append(path)
                _note_outside(search, path, real_root)
            elif has_extension(name, HEIF_EXTENSIONS):
                search.unreadable_heif.append(path)
    order = lambda path: path.relative_to(root).parts  # noqa: E731
    for paths in (search.paths, search.unreadable_heif, search.loops, search.outside):
        paths.sort(key=order)
    return search


def _link_target(path: Path) -> str:
    return f" -> {printable_name(os.readlink(path))}" if path.is_symlink() else ""


def _identity(path: Path) -> tuple[int, int] | None:
    """The real folder a path is (device, inode); None for a link that never ends (a loop)."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_dev, status.st_ino


def _note_outside(search: ImageSearch, path: Path, real_root: str) -> None:
    if path.is_symlink() and os.path.commonpath([os.path.realpath(path), real_root]) != real_root:
        search.outside.append(path)
