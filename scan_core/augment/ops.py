"""Per-image random draws and image operations that SimCLR's views and SCAN's strong
augmentation both use (PIL's enhancement rules, batched affine warps)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.transforms.v2 import functional as TF


def uniform(count: int, low: float, high: float, generator: torch.Generator) -> Tensor:
    return low + (high - low) * torch.rand(count, generator=generator)


def chance(count: int, probability: float, generator: torch.Generator) -> Tensor:
    return torch.rand(count, generator=generator) < probability


def warp(images: Tensor, theta: Tensor) -> Tensor:
    """Apply per-image affine maps (output coords -> input coords, in [-1, 1] units)."""
    grid = F.affine_grid(theta.to(images), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def flip_signs(count: int, enabled: bool, generator: torch.Generator) -> Tensor:
    flips = chance(count, 0.5, generator) if enabled else torch.zeros(count, dtype=torch.bool)
    return 1.0 - 2.0 * flips.float()


def blend(images: Tensor, degenerate: Tensor, factor: Tensor) -> Tensor:
    """PIL's ImageEnhance rule: factor 0 gives ``degenerate``, 1 the image, above 1 extrapolates."""
    factor = factor.to(images).view(-1, 1, 1, 1)
    return (degenerate + factor * (images - degenerate)).clamp(0.0, 1.0)


def grayscale(images: Tensor) -> Tensor:
    if images.shape[1] == 1:
        return images
    return TF.rgb_to_grayscale(images, num_output_channels=images.shape[1])


def adjust_brightness(images: Tensor, factor: Tensor) -> Tensor:
    return blend(images, torch.zeros_like(images), factor)


def adjust_contrast(images: Tensor, factor: Tensor) -> Tensor:
    mean_gray = grayscale(images).mean(dim=(1, 2, 3), keepdim=True)
    return blend(images, mean_gray.expand_as(images), factor)


def adjust_saturation(images: Tensor, factor: Tensor) -> Tensor:
    return blend(images, grayscale(images), factor)


def adjust_sharpness(images: Tensor, factor: Tensor) -> Tensor:
    return blend(images, TF.adjust_sharpness(images, 0.0), factor)
