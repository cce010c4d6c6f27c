"""The one in-memory form every data source is turned into.

Digits, Fashion-MNIST, CIFAR, STL, ImageNet subsets and a user's folder all become an
``ImageSet``: a uint8 array of equally sized images plus optional labels. Everything
after ``prepare`` reads only this form, so a user's own arrays take the same path as the
benchmark data sets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

UNKNOWN_LABEL = -1


@dataclass
class ImageSet:
    """Images as ``uint8[N, H, W, C]`` (C is 1 or 3) with optional labels and sources.

    ``labels`` holds class indices, or is None when the source carries no labels. Splits
    joined with and without labels (STL-10's train+unlabeled) keep the known labels and
    mark the others ``UNKNOWN_LABEL`` (-1).
    ``sources`` names where each image came from (a file path, or ``"<name>:<split>:<i>"``
    for images read out of an archive); it is what predictions point a user back to.
    """

    images: np.ndarray
    labels: np.ndarray | None
    class_names: list[str] | None
    sources: list[str]
    split: str
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise ValueError(
                f"images must be uint8 [N, H, W, C], got {self.images.dtype} {self.images.shape}"
            )
        if self.images.shape[-1] not in (1, 3):
            raise ValueError(f"images must have 1 or 3 channels, got {self.images.shape[-1]}")
        count = len(self.images)
        if self.labels is not None and len(self.labels) != count:
            raise ValueError(f"{len(self.labels)} labels for {count} images")
        if len(self.sources) != count:
            raise ValueError(f"{len(self.sources)} sources for {count} images")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_channels(self) -> int:
        return int(self.images.shape[-1])

    @property
    def image_size(self) -> int:
        return int(self.images.shape[1])
