"""Batched augmentations on image tensors, one random draw per image.

Images come in as float ``[B, C, H, W]`` in [0, 1]; every function takes a
``torch.Generator`` so a seed fixes the exact views. Working on whole batches (not one PIL
image at a time) keeps the CPU path fast and lets the same code run on a GPU. The colour
and histogram operations are torchvision's (``transforms.v2.functional``); geometric
operations are batched affine warps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.transforms.v2 import functional as TF


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
    mean = torch.tensor(settings.mean, device=images.device).view(1, -1, 1, 1)
    std = torch.tensor(settings.std, device=images.device).view(1, -1, 1, 1)
    return (images - mean) / std


def _uniform(count: int, low: float, high: float, generator: torch.Generator) -> Tensor:
    return low + (high - low) * torch.rand(count, generator=generator)


def _chance(count: int, probability: float, generator: torch.Generator) -> Tensor:
    return torch.rand(count, generator=generator) < probability


def _warp(images: Tensor, theta: Tensor) -> Tensor:
    """Apply per-image affine maps (output coords -> input coords, in [-1, 1] units)."""
    grid = F.affine_grid(theta.to(images), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _flip_signs(count: int, enabled: bool, generator: torch.Generator) -> Tensor:
    flips = _chance(count, 0.5, generator) if enabled else torch.zeros(count, dtype=torch.bool)
    return 1.0 - 2.0 * flips.float()


def random_resized_crop(
    images: Tensor, min_scale: float, hflip: bool, generator: torch.Generator, rotation: float = 0.0
) -> Tensor:
    """Crop a random area (``min_scale``..1 of the image, aspect 3/4..4/3), resize back, maybe
    flip, and rotate by up to ``rotation`` degrees either way (0: no rotation, no extra draw)."""
    count = images.shape[0]
    area = _uniform(count, min_scale, 1.0, generator)
    log_ratio = _uniform(count, math.log(3 / 4), math.log(4 / 3), generator)
    width = torch.sqrt(area * torch.exp(log_ratio)).clamp(max=1.0)
    height = torch.sqrt(area / torch.exp(log_ratio)).clamp(max=1.0)
    center_x = (1.0 - width) * _uniform(count, -1.0, 1.0, generator)
    center_y = (1.0 - height) * _uniform(count, -1.0, 1.0, generator)
    theta = torch.zeros(count, 2, 3)
    theta[:, 0, 0] = width * _flip_signs(count, hflip, generator)
    theta[:, 0, 2] = center_x
    theta[:, 1, 1] = height
    theta[:, 1, 2] = center_y
    if rotation > 0:
        radians = _uniform(count, -rotation, rotation, generator) * math.pi / 180.0
        turn = torch.stack([torch.stack([torch.cos(radians), -torch.sin(radians)], dim=1),
                            torch.stack([torch.sin(radians), torch.cos(radians)], dim=1)], dim=1)
        theta[:, :, :2] = theta[:, :, :2] @ turn
    return _warp(images, theta)


def _blend(images: Tensor, degenerate: Tensor, factor: Tensor) -> Tensor:
    """PIL's ImageEnhance rule: factor 0 gives ``degenerate``, 1 the image, above 1 extrapolates."""
    factor = factor.to(images).view(-1, 1, 1, 1)
    return (degenerate + factor * (images - degenerate)).clamp(0.0, 1.0)


def _grayscale(images: Tensor) -> Tensor:
    if images.shape[1] == 1:
        return images
    return TF.rgb_to_grayscale(images, num_output_channels=images.shape[1])


def _adjust_brightness(images: Tensor, factor: Tensor) -> Tensor:
    return _blend(images, torch.zeros_like(images), factor)


def _adjust_contrast(images: Tensor, factor: Tensor) -> Tensor:
    mean_gray = _grayscale(images).mean(dim=(1, 2, 3), keepdim=True)
    return _blend(images, mean_gray.expand_as(images), factor)


def _adjust_saturation(images: Tensor, factor: Tensor) -> Tensor:
    return _blend(images, _grayscale(images), factor)


def _adjust_sharpness(images: Tensor, factor: Tensor) -> Tensor:
    return _blend(images, TF.adjust_sharpness(images, 0.0), factor)


def color_jitter(images: Tensor, strength: float, probability: float, generator: torch.Generator) -> Tensor:
    """SimCLR's colour distortion: brightness, contrast, saturation (and hue, by a tenth of
    ``strength``) on a random ``probability`` share of the batch."""
    count = images.shape[0]
    low, high = max(0.0, 1.0 - strength), 1.0 + strength
    jittered = _adjust_brightness(images, _uniform(count, low, high, generator))
    jittered = _adjust_contrast(jittered, _uniform(count, low, high, generator))
    if images.shape[1] == 3:
        jittered = _adjust_saturation(jittered, _uniform(count, low, high, generator))
        hues = _uniform(count, -strength / 4, strength / 4, generator)
        jittered = torch.stack([TF.adjust_hue(image, float(hue)) for image, hue in zip(jittered, hues)])
    apply = _chance(count, probability, generator).view(-1, 1, 1, 1)
    return torch.where(apply, jittered, images)


def random_grayscale(images: Tensor, probability: float, generator: torch.Generator) -> Tensor:
    apply = _chance(images.shape[0], probability, generator).view(-1, 1, 1, 1)
    return torch.where(apply, _grayscale(images), images)


def simclr_view(images: Tensor, settings: AugmentSettings, generator: torch.Generator) -> Tensor:
    """One SimCLR view: resized crop, flip, colour jitter (p=0.8), grayscale (p=0.2), normalise."""
    views = random_resized_crop(images, settings.crop_min_scale, settings.hflip, generator, settings.rotation)
    views = color_jitter(views, settings.jitter_strength, 0.8, generator)
    views = random_grayscale(views, 0.2, generator)
    return normalize(views, settings)


def weak_view(images: Tensor, settings: AugmentSettings, generator: torch.Generator) -> Tensor:
    """A weak view: flip and a shift of up to 1/8 of the side, normalised. (Self-labeling takes
    its pseudo-labels from the plain image instead, as the authors' code does.)"""
    count = images.shape[0]
    theta = torch.zeros(count, 2, 3)
    theta[:, 0, 0] = _flip_signs(count, settings.hflip, generator)
    theta[:, 1, 1] = 1.0
    theta[:, :, 2] = _uniform(2 * count, -0.25, 0.25, generator).view(count, 2)
    return normalize(_warp(images, theta), settings)


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
        return _warp(images, _affine_op(name, magnitude))
    if name == "solarize":
        return _solarize(images, magnitude)
    if name == "color":
        return _adjust_saturation(images, magnitude)
    if name == "contrast":
        return _adjust_contrast(images, magnitude)
    if name == "brightness":
        return _adjust_brightness(images, magnitude)
    if name == "sharpness":
        return _adjust_sharpness(images, magnitude)
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
    theta[:, 0, 0] = _flip_signs(count, settings.hflip, generator)
    theta[:, 1, 1] = 1.0
    views = _warp(images, theta)
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
