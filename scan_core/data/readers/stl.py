"""Read STL-10 from its binary files (torchvision's ``stl10_binary`` folder).

The files store each image channel by channel in column-major order; reading them
directly (and transposing to rows first) keeps images upright without going through
torchvision. The ``unlabeled`` split has no labels, which SCAN uses for pretext training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scan_core.data.image_set import ImageSet

STL10_SPLITS = ("train", "test", "unlabeled")
_FOLDER = "stl10_binary"
_SIZE = 96


def read_stl10(root: Path, split: str, download: bool = False) -> ImageSet:
    """Read 96x96x3 images of one split; labels 1..10 on disk become 0..9.

    ``unlabeled`` comes back with neither labels nor class names.
    """
    root = Path(root)
    if split not in STL10_SPLITS:
        raise ValueError(f"unknown STL-10 split {split!r}; valid: {', '.join(STL10_SPLITS)}")
    folder = root / _FOLDER
    images_path = folder / f"{split}_X.bin"
    labels_path, names_path = folder / f"{split}_y.bin", folder / "class_names.txt"
    labelled = split != "unlabeled"
    needed = [images_path, labels_path, names_path] if labelled else [images_path]
    if download and not all(p.is_file() for p in needed):
        from torchvision.datasets import STL10

        STL10(str(root), split=split, download=True)
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"STL-10 files missing: {', '.join(missing)}. Pass download=True to fetch them "
            f"with torchvision, or extract stl10_binary.tar.gz into {root} yourself."
        )
    raw = np.fromfile(images_path, dtype=np.uint8)
    pixels = 3 * _SIZE * _SIZE
    if raw.size % pixels:
        raise ValueError(f"{images_path}: size {raw.size} is not a multiple of {pixels}")
    # On disk: [N, channel, column, row]; move to [N, row, column, channel].
    images = np.ascontiguousarray(raw.reshape(-1, 3, _SIZE, _SIZE).transpose(0, 3, 2, 1))
    labels, names = None, None
    if labelled:
        names = [line.strip() for line in names_path.read_text().splitlines() if line.strip()]
        labels = np.fromfile(labels_path, dtype=np.uint8).astype(np.int64) - 1
        if len(labels) != len(images):
            raise ValueError(f"{labels_path}: {len(labels)} labels for {len(images)} images")
        if labels.size and (labels.min() < 0 or labels.max() >= len(names)):
            raise ValueError(f"{labels_path}: labels outside 1..{len(names)}")
    return ImageSet(
        images=images,
        labels=labels,
        class_names=names,
        sources=[f"stl10:{split}:{i}" for i in range(len(images))],
        split=split,
    )
