"""What augmentation may do to an image, and the conversions every view shares."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class AugmentSettings:
    """What may be done to an image without changing what it shows.

    ``hflip`` is off for data where mirroring changes the class (digits). ``cutout_fraction``
    is the largest side of SCAN's Cutout hole as a share of the image side (the authors' 16 px
    on 32 px CIFAR is 0.5); each image draws its own side up to it, so one setting fits every
    resolution.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    hflip: bool = True
    crop_min_scale: float = 0.2
    jitter_strength: float = 0.4
    rotation: float = 0.0
    strong_ops: int = 4
    cutout_fraction: float = 0.5


def to_float(images: Tensor) -> Tensor:
    """uint8 ``[B, H, W, C]`` (as stored) to float ``[B, C, H, W]`` in [0, 1]."""
    return images.permute(0, 3, 1, 2).float().div_(255.0)


def normalize(images: Tensor, settings: AugmentSettings) -> Tensor:
    stats = torch.tensor([settings.mean, settings.std])
    if images.is_cuda:  # pinned: the copy is queued, not waited for
        stats = stats.pin_memory()
    mean, std = stats.to(images.device, non_blocking=True).view(2, 1, -1, 1, 1)
    return (images - mean) / std
