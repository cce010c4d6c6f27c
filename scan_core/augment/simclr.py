"""SimCLR's views (pretext training, SCAN's ``simclr`` augmentation) and the weak view."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from scan_core.augment.ops import (adjust_brightness, adjust_contrast, adjust_hue, adjust_saturation, chance, flip_signs,
                                  grayscale, uniform, warp, where)
from scan_core.augment.settings import AugmentSettings, normalize


def random_resized_crop(
    images: Tensor, min_scale: float, hflip: bool, generator: torch.Generator, rotation: float = 0.0
) -> Tensor:
    """Crop a random area (``min_scale``..1 of the image, aspect 3/4..4/3), resize back, maybe
    flip, and rotate by up to ``rotation`` degrees either way (0: no rotation, no extra draw)."""
    count = images.shape[0]
    area = uniform(count, min_scale, 1.0, generator)
    log_ratio = uniform(count, math.log(3 / 4), math.log(4 / 3), generator)
    width = torch.sqrt(area * torch.exp(log_ratio)).clamp(max=1.0)
    height = torch.sqrt(area / torch.exp(log_ratio)).clamp(max=1.0)
    center_x = (1.0 - width) * uniform(count, -1.0, 1.0, generator)
    center_y = (1.0 - height) * uniform(count, -1.0, 1.0, generator)
    theta = torch.zeros(count, 2, 3)
    theta[:, 0, 0] = width * flip_signs(count, hflip, generator)
    theta[:, 0, 2] = center_x
    theta[:, 1, 1] = height
    theta[:, 1, 2] = center_y
    if rotation > 0:
        radians = uniform(count, -rotation, rotation, generator) * math.pi / 180.0
        turn = torch.stack([torch.stack([torch.cos(radians), -torch.sin(radians)], dim=1),
                            torch.stack([torch.sin(radians), torch.cos(radians)], dim=1)], dim=1)
        theta[:, :, :2] = theta[:, :, :2] @ turn
    return warp(images, theta)


def color_jitter(images: Tensor, strength: float, probability: float, generator: torch.Generator) -> Tensor:
    """SimCLR's colour distortion: brightness, contrast, saturation (and hue, by up to a quarter
    of ``strength``: SimCLR's 0.1 at 0.4) on a random ``probability`` share of the batch."""
    count = images.shape[0]
    low, high = max(0.0, 1.0 - strength), 1.0 + strength
    jittered = adjust_brightness(images, uniform(count, low, high, generator))
    jittered = adjust_contrast(jittered, uniform(count, low, high, generator))
    if images.shape[1] == 3:
        jittered = adjust_saturation(jittered, uniform(count, low, high, generator))
        jittered = adjust_hue(jittered, uniform(count, -strength / 4, strength / 4, generator))
    return where(chance(count, probability, generator), jittered, images)


def random_grayscale(images: Tensor, probability: float, generator: torch.Generator) -> Tensor:
    return where(chance(images.shape[0], probability, generator), grayscale(images), images)


def simclr_view(images: Tensor, settings: AugmentSettings, generator: torch.Generator) -> Tensor:
    """One SimCLR view: resized crop, flip, colour jitter (p=0.8), grayscale (p=0.2), normalise."""
    views = random_resized_crop(images, settings.crop_min_scale, settings.hflip, generator, settings.rotation)
    views = color_jitter(views, settings.jitter_strength, 0.8, generator)
    views = random_grayscale(views, 0.2, generator)
    return normalize(views, settings)
