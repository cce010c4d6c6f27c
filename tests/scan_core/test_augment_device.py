"""Augmentation on the batch's device: parameters drawn on the CPU from the caller's generator,
the same draws (and views) on any device, and the batched hue shift. (That each op is right is
tests/scan_core/test_augment.py's: every op against torchvision's on the same parameters.)"""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from scan_core.augment.ops import adjust_hue, adjust_sharpness
from scan_core.augment.settings import AugmentSettings
from scan_core.augment.simclr import simclr_view
from scan_core.augment.strong import STRONG_OPS, _apply_drawn_ops, _autocontrast, apply_strong_op, cutout, strong_view

VIEWS = {"simclr": simclr_view, "strong": strong_view}
# Every field given, so that a change of a default does not change what these tests draw.
SETTINGS = AugmentSettings(mean=(0.5,) * 3, std=(0.25,) * 3, hflip=True, crop_min_scale=0.2, jitter_strength=0.4,
                           rotation=10.0, strong_ops=4, cutout_fraction=0.25)


def _images(count: int = 8, size: int = 16, channels: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.rand(count, channels, size, size, generator=torch.Generator().manual_seed(seed))


def test_batched_hue_equals_torchvision_image_by_image() -> None:
    images = _images(count=16, size=12)
    images[0] = 0.3  # grey: hue and saturation undefined, left grey
    images[1, :, :6] = images[1, :1, :6]  # half grey, half coloured
    shifts = torch.linspace(-0.5, 0.5, 16)
    expected = torch.stack([TF.adjust_hue(image, float(shift)) for image, shift in zip(images, shifts)])
    torch.testing.assert_close(adjust_hue(images, shifts), expected, atol=1e-6, rtol=0)


def test_hue_turns_pure_colours_by_thirds_and_leaves_grey_images() -> None:
    red = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1).repeat(3, 1, 2, 2)
    turned = adjust_hue(red, torch.tensor([1 / 3, -1 / 3, 0.0]))[:, :, 0, 0]
    torch.testing.assert_close(turned, torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]), atol=1e-6, rtol=0)
    grey = _images(count=2, channels=1)
    assert adjust_hue(grey, torch.tensor([0.2, -0.2])) is grey


def test_autocontrast_and_sharpness_are_torchvisions_without_waiting_for_the_device() -> None:
    images = 0.2 + 0.5 * _images()
    images[0, 1] = 0.4  # a flat channel is left as it is
    torch.testing.assert_close(_autocontrast(images), TF.autocontrast(images), atol=0, rtol=0)
    factors = torch.linspace(0.05, 0.95, 8)
    expected = torch.stack([TF.adjust_sharpness(image, float(factor)) for image, factor in zip(images, factors)])
    torch.testing.assert_close(adjust_sharpness(images, factors), expected, atol=1e-6, rtol=0)


def test_grouped_strong_ops_equal_one_pass_per_op() -> None:
    # The batch reordered once per round gives what running each op on its selected images did.
    views = _images(count=40)
    generator = torch.Generator().manual_seed(5)
    chosen = torch.randint(0, len(STRONG_OPS), (40,), generator=generator)
    low, high = torch.tensor(list(STRONG_OPS.values())).T
    magnitudes = low[chosen] + (high[chosen] - low[chosen]) * torch.rand(40, generator=generator)
    expected = views.clone()
    for index, name in enumerate(STRONG_OPS):
        selected = (chosen == index).nonzero().flatten()
        if len(selected):
            expected[selected] = apply_strong_op(name, views[selected], magnitudes[selected])
    assert torch.equal(_apply_drawn_ops(views, chosen, magnitudes), expected)


def _meta(images: torch.Tensor) -> torch.Tensor:
    """A ``meta`` batch shaped like ``images``. A meta tensor meeting a CPU tensor of more than
    one element raises, as a CUDA one does, so running on it finds a parameter left on the CPU
    without a GPU."""
    return torch.empty_like(images, device="meta")


@pytest.mark.parametrize("view", sorted(VIEWS))
@pytest.mark.parametrize("channels", [1, 3])
def test_views_stay_on_the_batch_device_and_draw_the_same_parameters(view: str, channels: int) -> None:
    images = _images(channels=channels)
    settings = AugmentSettings(mean=(0.5,) * channels, std=(0.25,) * channels, rotation=10.0, cutout_fraction=0.25)
    on_cpu, on_meta = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    VIEWS[view](images, settings, on_cpu)
    out = VIEWS[view](_meta(images), settings, on_meta)
    assert out.device.type == "meta" and out.shape == images.shape
    assert torch.equal(on_cpu.get_state(), on_meta.get_state())  # the same draws, in the same order


@pytest.mark.parametrize("name", sorted(STRONG_OPS))
def test_each_strong_op_stays_on_the_batch_device(name: str) -> None:
    low, high = STRONG_OPS[name]
    assert apply_strong_op(name, _meta(_images()), torch.linspace(low, high, 8)).device.type == "meta"


def test_cutout_makes_its_hole_on_the_batch_device() -> None:
    assert cutout(_meta(_images()), 0.5, torch.Generator()).device.type == "meta"


def test_views_leave_the_input_batch_unchanged() -> None:
    images = _images()
    before = images.clone()
    for view in VIEWS.values():
        view(images, SETTINGS, torch.Generator().manual_seed(0))
    assert torch.equal(images, before)


@pytest.mark.gpu
@pytest.mark.parametrize("view", sorted(VIEWS))
def test_cuda_views_match_cpu_views_from_the_same_seed(view: str) -> None:
    images = _images(count=64, size=32)
    on_cpu, on_cuda = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    expected = VIEWS[view](images, SETTINGS, on_cpu)
    got = VIEWS[view](images.cuda(), SETTINGS, on_cuda)
    assert got.is_cuda and torch.equal(on_cpu.get_state(), on_cuda.get_state())
    difference = (got.cpu() - expected).abs()
    if view == "strong":
        # Warps differ by ~1e-6 between devices; a pixel that lands on the other side of a
        # rounding step (posterize, equalize) or of solarize's threshold differs by a level.
        assert (difference > 1e-4).float().mean() < 1e-3 and difference.mean() < 1e-4
    else:
        torch.testing.assert_close(got.cpu(), expected, atol=1e-4, rtol=0)


@pytest.mark.gpu
def test_cuda_views_never_wait_for_the_device() -> None:
    # A prefetch thread queues the next batch's views while the model's step runs: a blocking
    # copy, .item() or a boolean index in the augmentation would make it wait for that step.
    images = _images(count=32, size=32).cuda()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for view in VIEWS.values():
            view(images, SETTINGS, torch.Generator().manual_seed(0))
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.gpu
@pytest.mark.parametrize("name", sorted(STRONG_OPS))
def test_each_strong_op_on_cuda_matches_the_cpu(name: str) -> None:
    low, high = STRONG_OPS[name]
    images, magnitudes = _images(count=16), torch.linspace(low, high, 16)
    expected = apply_strong_op(name, images, magnitudes)
    torch.testing.assert_close(apply_strong_op(name, images.cuda(), magnitudes).cpu(), expected, atol=1e-5, rtol=0)


def test_one_warp_serves_a_mix_of_geometric_ops() -> None:
    from scan_core.augment.strong import AFFINE_OPS, _affine_thetas

    kinds = torch.tensor([AFFINE_OPS.index(name) for name in AFFINE_OPS])
    thetas = _affine_thetas(kinds, torch.tensor([90.0, 0.1, -0.1, 0.1, -0.1]))
    expected = torch.tensor([
        [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0]],  # rotate 90 degrees
        [[1.0, 0.1, 0.0], [0.0, 1.0, 0.0]],  # shear_x
        [[1.0, 0.0, 0.0], [-0.1, 1.0, 0.0]],  # shear_y
        [[1.0, 0.0, 0.2], [0.0, 1.0, 0.0]],  # translate_x by a tenth of the side ([-1, 1] units)
        [[1.0, 0.0, 0.0], [0.0, 1.0, -0.2]],  # translate_y
    ])
    torch.testing.assert_close(thetas, expected, atol=1e-6, rtol=0)
