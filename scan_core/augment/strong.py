"""SCAN's strong augmentation (paper Table S4): random operations from a pool, then Cutout."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

from scan_core.augment.ops import adjust_brightness, adjust_contrast, adjust_saturation, adjust_sharpness, flip_signs, warp
from scan_core.augment.settings import AugmentSettings, normalize


def _affine_op(kind: str, magnitude: Tensor) -> Tensor:
    count = magnitude.shape[0]
    theta = torch.zeros(count, 2, 3)
    theta[:, 0, 0] = 1.0
    theta[:, 1, 1] = 1.0
    if kind == "rotate":
        radians = magnitude * math.pi / 180.0
        theta[:, 0, 0] = torch.cos(radians)
        theta[:, 0, 1] = -torch.sin(radians)
        theta[:, 1, 0] = torch.sin(radians)
        theta[:, 1, 1] = torch.cos(radians)
    elif kind == "shear_x":
        theta[:, 0, 1] = magnitude
    elif kind == "shear_y":
        theta[:, 1, 0] = magnitude
    elif kind == "translate_x":
        theta[:, 0, 2] = 2.0 * magnitude
    elif kind == "translate_y":
        theta[:, 1, 2] = 2.0 * magnitude
    return theta


def _to_uint8(images: Tensor) -> Tensor:
    return (images * 255.0).round().clamp(0, 255).to(torch.uint8)


def _posterize(images: Tensor, bits: Tensor) -> Tensor:
    keep = (256 - (1 << (8 - bits.long()))).to(torch.uint8).view(-1, 1, 1, 1)
    return (_to_uint8(images) & keep).float() / 255.0


def _solarize(images: Tensor, threshold: Tensor) -> Tensor:
    threshold = threshold.to(images).view(-1, 1, 1, 1)
    return torch.where(images >= threshold, 1.0 - images, images)


# SCAN's strong augmentation pool (paper Table S4): name -> magnitude range.
STRONG_OPS: dict[str, tuple[float, float]] = {
    "identity": (0.0, 0.0),
    "autocontrast": (0.0, 0.0),
    "equalize": (0.0, 0.0),
    "rotate": (-30.0, 30.0),
    "solarize": (0.0, 1.0),
    "color": (0.05, 0.95),
    "contrast": (0.05, 0.95),
    "brightness": (0.05, 0.95),
    "sharpness": (0.05, 0.95),
    "shear_x": (-0.1, 0.1),
    "shear_y": (-0.1, 0.1),
    "translate_x": (-0.1, 0.1),
    "translate_y": (-0.1, 0.1),
    "posterize": (4.0, 8.0),
}


def apply_strong_op(name: str, images: Tensor, magnitude: Tensor) -> Tensor:
    """One operation of the pool with a per-image magnitude."""
    if name == "identity":
        return images
    if name == "autocontrast":
        return TF.autocontrast(images)
    if name == "equalize":
        return TF.equalize(_to_uint8(images)).float() / 255.0
    if name in ("rotate", "shear_x", "shear_y", "translate_x", "translate_y"):
        return warp(images, _affine_op(name, magnitude))
    if name == "solarize":
        return _solarize(images, magnitude)
    if name == "color":
        return adjust_saturation(images, magnitude)
    if name == "contrast":
        return adjust_contrast(images, magnitude)
    if name == "brightness":
        return adjust_brightness(images, magnitude)
    if name == "sharpness":
        return adjust_sharpness(images, magnitude)
    if name == "posterize":
        return _posterize(images, magnitude.round())
    raise ValueError(f"unknown strong augmentation {name!r}; known: {sorted(STRONG_OPS)}")


def cutout(images: Tensor, max_fraction: float, generator: torch.Generator) -> Tensor:
    """Zero one square per image, centred anywhere (clipped at borders), whose side is drawn
    per image from 1 to ``max_fraction`` of the shorter image side."""
    count, _, height, width = images.shape
    largest = max(1, round(max_fraction * min(height, width)))
    sides = torch.randint(1, largest + 1, (count,), generator=generator).view(-1, 1, 1)
    center_y = torch.randint(0, height, (count,), generator=generator).view(-1, 1, 1)
    center_x = torch.randint(0, width, (count,), generator=generator).view(-1, 1, 1)
    rows = torch.arange(height).view(1, -1, 1)
    cols = torch.arange(width).view(1, 1, -1)
    top, left = center_y - sides // 2, center_x - sides // 2
    hole = (rows >= top) & (rows < top + sides) & (cols >= left) & (cols < left + sides)
    return images.masked_fill(hole.unsqueeze(1).to(images.device), 0.0)


def strong_view(images: Tensor, settings: AugmentSettings, generator: torch.Generator) -> Tensor:
    """SCAN's strong augmentation: flip, ``strong_ops`` operations drawn with replacement
    (uniform magnitudes), normalise, Cutout."""
    count = images.shape[0]
    op_names = list(STRONG_OPS)
    theta = torch.zeros(count, 2, 3)
    theta[:, 0, 0] = flip_signs(count, settings.hflip, generator)
    theta[:, 1, 1] = 1.0
    views = warp(images, theta)
    for _ in range(settings.strong_ops):
        chosen = torch.randint(0, len(op_names), (count,), generator=generator)
        low, high = torch.tensor([STRONG_OPS[name] for name in op_names]).T
        magnitudes = low[chosen] + (high[chosen] - low[chosen]) * torch.rand(count, generator=generator)
        for index, name in enumerate(op_names):
            selected = (chosen == index).nonzero().flatten()
            if len(selected) and name != "identity":
                views[selected] = apply_strong_op(name, views[selected], magnitudes[selected])
    views = normalize(views, settings)
    return cutout(views, settings.cutout_fraction, generator) if settings.cutout_fraction > 0 else views
