"""What augmentation may do to an image, and the conversions every view shares."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from scan_core.defaults import PARAM_DEFAULTS
from scan_core.recipes import DEFAULT_RECIPE, RECIPES

_PARAMS = PARAM_DEFAULTS["augment"]
_RECIPE = RECIPES[DEFAULT_RECIPE]


@dataclass(frozen=True)
class AugmentSettings:
    """What may be done to an image without changing what it shows.

    ``hflip`` is off for data where mirroring changes the class (digits). ``cutout_fraction``
    is the largest side of SCAN's Cutout hole as a share of the image side (the authors' 16 px
    on 32 px CIFAR is 0.5); each image draws its own side up to it, so one setting fits every
    resolution.

    Defaults are params.yaml's (``scan_core.defaults.PARAM_DEFAULTS``). params.yaml leaves
    ``hflip``, ``crop_min_scale``, ``jitter_strength`` and ``rotation`` at ``auto``, which the
    pipeline resolves from the recipe ``prepare`` chose (``scan_core.recipes``,
    ``scan_core.defaults.resolve_augment``); here they default to the values of the
    ``small_grayscale`` recipe, which the embedded digits default resolves to.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    hflip: bool = _RECIPE.hflip
    crop_min_scale: float = _RECIPE.crop_min_scale
    jitter_strength: float = _RECIPE.jitter_strength
    rotation: float = _RECIPE.rotation
    strong_ops: int = _PARAMS["strong_ops"]
    cutout_fraction: float = _PARAMS["cutout_fraction"]


def to_float(images: Tensor) -> Tensor:
    """uint8 ``[B, H, W, C]`` (as stored) to float ``[B, C, H, W]`` in [0, 1]."""
    return images.permute(0, 3, 1, 2).float().div_(255.0)


def normalize(images: Tensor, settings: AugmentSettings) -> Tensor:
    stats = torch.tensor([settings.mean, settings.std])
    if images.is_cuda:  # pinned: the copy is queued, not waited for
        stats = stats.pin_memory()
    mean, std = stats.to(images.device, non_blocking=True).view(2, 1, -1, 1, 1)
    return (images - mean) / std
