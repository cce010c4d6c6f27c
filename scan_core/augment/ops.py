"""Per-image random draws and image operations that SimCLR's views and SCAN's strong
augmentation both use (PIL's enhancement rules, batched affine warps, a batched hue shift).

Every random number is drawn on the CPU from the caller's generator, in the same order on
any device, and only the drawn parameters move to the batch's device (``to_device``, ``on``): a
seeded run makes the same views on a CPU and on a GPU, and the images never leave the
device. Nothing here waits for the device (no blocking copies, no data-dependent shapes), so
a prefetch thread can queue a batch's augmentation while the model's step still runs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

from scan_core.devices import to_device


def uniform(count: int, low: float, high: float, generator: torch.Generator) -> Tensor:
    return low + (high - low) * torch.rand(count, generator=generator)


def chance(count: int, probability: float, generator: torch.Generator) -> Tensor:
    return torch.rand(count, generator=generator) < probability


def on(images: Tensor, drawn: Tensor) -> Tensor:
    """``drawn`` (per-image parameters made on the CPU) on ``images``' device, shaped to
    broadcast over ``[B, C, H, W]``; its dtype is kept (masks stay boolean)."""
    return to_device(drawn, images.device).view(-1, 1, 1, 1)


def where(apply: Tensor, changed: Tensor, images: Tensor) -> Tensor:
    """``changed`` for the images whose CPU-drawn ``apply`` flag is set, ``images`` elsewhere."""
    return torch.where(on(images, apply), changed, images)


def warp(images: Tensor, theta: Tensor) -> Tensor:
    """Apply per-image affine maps (output coords -> input coords, in [-1, 1] units)."""
    grid = F.affine_grid(to_device(theta, images.device).to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def flip_signs(count: int, enabled: bool, generator: torch.Generator) -> Tensor:
    flips = chance(count, 0.5, generator) if enabled else torch.zeros(count, dtype=torch.bool)
    return 1.0 - 2.0 * flips.float()


def blend(images: Tensor, degenerate: Tensor, factor: Tensor) -> Tensor:
    """PIL's ImageEnhance rule: factor 0 gives ``degenerate``, 1 the image, above 1 extrapolates."""
    factor = on(images, factor).to(images.dtype)
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
    return blend(images, smoothed(images), factor)


def smoothed(images: Tensor) -> Tensor:
    """PIL's SMOOTH filter inside a one-pixel border that is kept: the degenerate image of
    ``ImageEnhance.Sharpness``. The arithmetic of torchvision's ``adjust_sharpness(images, 0)``,
    with its kernel moved without a blocking copy."""
    channels, height, width = images.shape[-3:]
    if height <= 2 or width <= 2:
        return images
    edge, centre = 1.0 / 13.0, 5.0 / 13.0
    kernel = torch.tensor([[edge, edge, edge], [edge, centre, edge], [edge, edge, edge]])
    kernel = to_device(kernel, images.device).to(images.dtype).expand(channels, 1, 3, 3)
    output = images.clone()
    inner = output[..., 1:-1, 1:-1]
    inner.add_(F.conv2d(output, kernel, groups=channels).sub_(inner), alpha=1.0)
    return output.clamp_(0.0, 1.0)


def adjust_hue(images: Tensor, shifts: Tensor) -> Tensor:
    """Rotate each RGB image's hue by its own ``shifts[i]`` (a share of the colour circle,
    -0.5..0.5) in one batched pass; grey images are returned as they are.

    The same arithmetic, in the same order, as torchvision's ``adjust_hue`` (PIL's RGB<->HSV
    rules) applied image by image, without a Python loop over the batch.
    """
    if images.shape[1] != 3:
        return images
    hue, saturation, value = _rgb_to_hsv(images)
    hue = hue.add_(on(images, shifts)[:, 0].to(images.dtype)).remainder_(1.0)
    return _hsv_to_rgb(hue, saturation, value)


def _rgb_to_hsv(images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Hue, saturation, value ``[B, H, W]`` of RGB ``images`` (torchvision's ``_rgb_to_hsv``)."""
    red, green, _ = images.unbind(dim=1)
    low, high = torch.aminmax(images, dim=1)
    grey = high == low  # hue and saturation are 0 there; the ones below only avoid 0/0
    ones = torch.ones_like(high)
    spread = high - low
    saturation = spread / torch.where(grey, ones, high)
    scaled = (high.unsqueeze(1) - images) / torch.where(grey, ones, spread).unsqueeze(1)
    red_c, green_c, blue_c = scaled.unbind(dim=1)
    not_red = high != red
    is_green = high == green
    hue_green = red_c.add(2.0).sub_(blue_c).mul_(is_green & not_red)
    hue_red = blue_c.sub(green_c).mul_(~not_red)
    hue_blue = green_c.add(4.0).sub_(red_c).mul_(not_red & ~is_green)
    hue = hue_red.add_(hue_green).add_(hue_blue).mul_(1.0 / 6.0).add_(1.0).fmod_(1.0)
    return hue, saturation, high


# Which of (v, p, q, t) each of R, G, B takes in each sixth of the hue circle (PIL's rule).
_HSV_SECTORS = ((0, 2, 1, 1, 3, 0), (3, 0, 0, 2, 1, 1), (1, 1, 3, 0, 0, 2))


def _hsv_to_rgb(hue: Tensor, saturation: Tensor, value: Tensor) -> Tensor:
    """RGB ``[B, 3, H, W]`` from hue, saturation, value ``[B, H, W]`` (torchvision's ``_hsv_to_rgb``)."""
    hue6 = hue.mul(6)
    sector = torch.floor(hue6)
    fraction = hue6.sub_(sector)
    sector = sector.to(torch.int64).remainder_(6)
    s_times_f = saturation * fraction
    one_minus_s = 1.0 - saturation
    q = (1.0 - s_times_f).mul_(value).clamp_(0.0, 1.0)
    t = s_times_f.add_(one_minus_s).mul_(value).clamp_(0.0, 1.0)
    p = one_minus_s.mul_(value).clamp_(0.0, 1.0)
    vpqt = torch.stack((value, p, q, t), dim=1)
    table = to_device(torch.tensor(_HSV_SECTORS, dtype=torch.int64), hue.device)
    select = table[:, sector].movedim(0, 1)  # [B, 3, H, W]: the vpqt entry each channel takes
    return vpqt.gather(1, select)
