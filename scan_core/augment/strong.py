"""SCAN's strong augmentation (paper Table S4): random operations from a pool, then Cutout."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

from scan_core.augment.ops import (adjust_brightness, adjust_contrast, adjust_saturation, adjust_sharpness, flip_signs, on,
                                  warp)
from scan_core.augment.settings import AugmentSettings, normalize
from scan_core.devices import to_device


# The pool's geometric operations: one warp serves any mix of them (``_affine_thetas``).
AFFINE_OPS = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")


def _affine_thetas(kinds: Tensor, magnitude: Tensor) -> Tensor:
    """Per-image affine maps ``[B, 2, 3]``: image i turned (degrees), sheared or shifted (a
    share of the side) by ``magnitude[i]`` as ``AFFINE_OPS[kinds[i]]`` says. Made on the CPU,
    where the parameters are drawn; ``warp`` moves them to the images."""
    turn = kinds == 0
    radians = magnitude * math.pi / 180.0
    cos, sin = torch.cos(radians), torch.sin(radians)
    ones, zeros = torch.ones_like(magnitude), torch.zeros_like(magnitude)
    entries = [
        torch.where(turn, cos, ones),
        torch.where(turn, -sin, torch.where(kinds == 1, magnitude, zeros)),
        torch.where(kinds == 3, 2.0 * magnitude, zeros),
        torch.where(turn, sin, torch.where(kinds == 2, magnitude, zeros)),
        torch.where(turn, cos, ones),
        torch.where(kinds == 4, 2.0 * magnitude, zeros),
    ]
    return torch.stack(entries, dim=1).view(-1, 2, 3)


def _autocontrast(images: Tensor) -> Tensor:
    """Stretch each image channel to span [0, 1] (flat channels kept): torchvision's
    ``autocontrast`` arithmetic, with ``where`` instead of a boolean index, which would wait
    for the device."""
    low = images.amin(dim=(-2, -1), keepdim=True)
    high = images.amax(dim=(-2, -1), keepdim=True)
    flat = high == low
    spread = torch.where(flat, torch.ones_like(high), high - low)
    return (images - torch.where(flat, torch.zeros_like(low), low)).div_(spread).clamp_(0.0, 1.0)


def _to_uint8(images: Tensor) -> Tensor:
    return (images * 255.0).round().clamp(0, 255).to(torch.uint8)


def _posterize(images: Tensor, bits: Tensor) -> Tensor:
    keep = on(images, (256 - (1 << (8 - bits.long()))).to(torch.uint8))
    return (_to_uint8(images) & keep).float() / 255.0


def _solarize(images: Tensor, threshold: Tensor) -> Tensor:
    threshold = on(images, threshold).to(images.dtype)
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
        return _autocontrast(images)
    if name == "equalize":
        return TF.equalize(_to_uint8(images)).float() / 255.0
    if name in AFFINE_OPS:
        return warp(images, _affine_thetas(torch.full(magnitude.shape, AFFINE_OPS.index(name)), magnitude))
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
    sides = torch.randint(1, largest + 1, (count,), generator=generator)
    center_y = torch.randint(0, height, (count,), generator=generator)
    center_x = torch.randint(0, width, (count,), generator=generator)
    # [B, 4] on the device: the hole's top, bottom, left, right edges (the mask is made there)
    edges = on(images, torch.stack([center_y - sides // 2, center_y - sides // 2 + sides,
                                    center_x - sides // 2, center_x - sides // 2 + sides], dim=1)).view(count, 4, 1)
    rows = torch.arange(height, device=images.device).view(1, -1)
    cols = torch.arange(width, device=images.device).view(1, -1)
    hole = (((rows >= edges[:, 0]) & (rows < edges[:, 1])).unsqueeze(2)
            & ((cols >= edges[:, 2]) & (cols < edges[:, 3])).unsqueeze(1))
    return images.masked_fill(hole.unsqueeze(1), 0.0)


_OP_NAMES = list(STRONG_OPS)
_LOW, _HIGH = torch.tensor(list(STRONG_OPS.values())).T
# The pool's operations as they are run: each non-geometric one alone, the geometric ones
# together in one warp; which of those groups each operation falls in, and its AFFINE_OPS kind.
_GROUPS = [name for name in _OP_NAMES if name not in AFFINE_OPS] + ["affine"]
_GROUP_OF = torch.tensor([_GROUPS.index("affine" if name in AFFINE_OPS else name) for name in _OP_NAMES])
_AFFINE_KIND = torch.tensor([AFFINE_OPS.index(name) if name in AFFINE_OPS else -1 for name in _OP_NAMES])


def _apply_drawn_ops(views: Tensor, chosen: Tensor, magnitudes: Tensor) -> Tensor:
    """Image i through operation ``_OP_NAMES[chosen[i]]`` with ``magnitudes[i]``.

    The batch is reordered once so that each group's images (``_GROUPS``) are one contiguous
    slice (in their original order, as a stable sort keeps them), every group runs once on its
    slice, and one gather restores the order: a few passes per round whatever the batch size,
    not a few per image or per operation. ``chosen`` and ``magnitudes`` stay on the CPU (no
    device sync for the counts).
    """
    groups = _GROUP_OF[chosen]
    order = torch.argsort(groups, stable=True)
    counts = torch.bincount(groups, minlength=len(_GROUPS)).tolist()
    grouped = views.index_select(0, to_device(order, views.device))
    slices = zip(_GROUPS, grouped.split(counts), magnitudes[order].split(counts), chosen[order].split(counts))
    pieces = []
    for group, images, magnitude, ops in slices:
        if not len(images):
            pieces.append(images)
        elif group == "affine":
            pieces.append(warp(images, _affine_thetas(_AFFINE_KIND[ops], magnitude)))
        else:
            pieces.append(apply_strong_op(group, images, magnitude))
    restore = to_device(torch.argsort(order), views.device)
    return torch.cat(pieces).index_select(0, restore)


def strong_view(images: Tensor, settings: AugmentSettings, generator: torch.Generator) -> Tensor:
    """SCAN's strong augmentation: flip, ``strong_ops`` operations drawn with replacement
    (uniform magnitudes), normalise, Cutout."""
    count = images.shape[0]
    theta = torch.zeros(count, 2, 3)
    theta[:, 0, 0] = flip_signs(count, settings.hflip, generator)
    theta[:, 1, 1] = 1.0
    views = warp(images, theta)
    for _ in range(settings.strong_ops):
        chosen = torch.randint(0, len(_OP_NAMES), (count,), generator=generator)
        magnitudes = _LOW[chosen] + (_HIGH[chosen] - _LOW[chosen]) * torch.rand(count, generator=generator)
        views = _apply_drawn_ops(views, chosen, magnitudes)
    views = normalize(views, settings)
    return cutout(views, settings.cutout_fraction, generator) if settings.cutout_fraction > 0 else views
