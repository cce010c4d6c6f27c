"""Batched augmentations: shapes, seeding, Cutout, the strong pool against torchvision's ops, flipping."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision import transforms as TV
from torchvision.transforms.v2 import functional as TVF

from scan_core.augment.settings import AugmentSettings, normalize, to_float

from scan_core.augment.simclr import simclr_view

from scan_core.augment.strong import STRONG_OPS, apply_strong_op, cutout, strong_view

VIEWS = {"simclr": simclr_view, "strong": strong_view}


def _settings(channels: int, **overrides) -> AugmentSettings:
    values = dict(mean=(0.5,) * channels, std=(0.25,) * channels, cutout_fraction=0.2)
    values.update(overrides)
    return AugmentSettings(**values)


def _images(channels: int, size: int, count: int = 6, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(count, channels, size, size, generator=generator)


def test_to_float_converts_stored_uint8_layout() -> None:
    stored = torch.tensor([[[[0, 255, 51]]]], dtype=torch.uint8)  # [B=1, H=1, W=1, C=3]
    images = to_float(stored)
    assert images.shape == (1, 3, 1, 1) and images.dtype == torch.float32
    torch.testing.assert_close(images.flatten(), torch.tensor([0.0, 1.0, 0.2]))


@pytest.mark.parametrize("view", sorted(VIEWS))
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [8, 32])
def test_views_keep_shape_and_dtype(view: str, channels: int, size: int) -> None:
    images = _images(channels, size)
    out = VIEWS[view](images, _settings(channels), torch.Generator().manual_seed(0))
    assert out.shape == images.shape
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert not torch.equal(out, normalize(images, _settings(channels)))  # something was done


@pytest.mark.parametrize("view", sorted(VIEWS))
@pytest.mark.parametrize("channels", [1, 3])
def test_same_seed_same_views_other_seed_other_views(view: str, channels: int) -> None:
    images = _images(channels, 16)
    settings = _settings(channels)
    first = VIEWS[view](images, settings, torch.Generator().manual_seed(7))
    again = VIEWS[view](images, settings, torch.Generator().manual_seed(7))
    other = VIEWS[view](images, settings, torch.Generator().manual_seed(8))
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)


def _hole_box(mask: torch.Tensor) -> tuple[int, int, int, int]:
    rows = mask.any(dim=1).nonzero().flatten()
    cols = mask.any(dim=0).nonzero().flatten()
    return int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1


@pytest.mark.parametrize(("fraction", "side"), [(0.25, 32), (0.5, 16)])
def test_cutout_zeroes_one_square_per_image_with_a_side_drawn_up_to_the_fraction(fraction: float, side: int) -> None:
    images = torch.ones(256, 3, side, side)
    out = cutout(images, fraction, torch.Generator().manual_seed(0))
    largest = round(fraction * side)
    inner_sides = set()
    for image in out:
        holes = image == 0
        assert torch.equal(holes[0], holes[1]) and torch.equal(holes[0], holes[2])  # all channels
        assert torch.all((image == 0) | (image == 1))
        top, bottom, left, right = _hole_box(holes[0])
        assert holes[0].sum() == (bottom - top) * (right - left)  # a solid rectangle
        assert bottom - top <= largest and right - left <= largest
        if 0 < top and bottom < side and 0 < left and right < side:
            assert bottom - top == right - left  # a square when not clipped
            inner_sides.add(bottom - top)
    assert inner_sides == set(range(1, largest + 1))  # every side from 1 to the largest is drawn


def test_cutout_hole_scales_with_the_image() -> None:
    generator = torch.Generator().manual_seed(0)
    small = (cutout(torch.ones(512, 1, 8, 8), 0.5, generator) == 0).flatten(1).sum(dim=1)
    large = (cutout(torch.ones(512, 1, 32, 32), 0.5, generator) == 0).flatten(1).sum(dim=1)
    assert small.max() <= 16 and large.max() > 16 * 8


def test_strong_view_cutout_fraction_zero_means_no_cutout() -> None:
    images = torch.ones(16, 1, 16, 16)
    settings = _settings(1, mean=(0.0,), std=(1.0,), cutout_fraction=0, strong_ops=0, hflip=False)
    torch.testing.assert_close(strong_view(images, settings, torch.Generator().manual_seed(0)), images)
    with_hole = strong_view(images, _settings(1, mean=(0.0,), std=(1.0,), cutout_fraction=0.25, strong_ops=0),
                            torch.Generator().manual_seed(0))
    assert ((with_hole == 0).flatten(1).sum(dim=1) > 0).all()


@pytest.mark.parametrize("name", sorted(STRONG_OPS))
@pytest.mark.parametrize("channels", [1, 3])
def test_every_strong_op_handles_per_image_magnitudes(name: str, channels: int) -> None:
    low, high = STRONG_OPS[name]
    images = 0.2 + 0.6 * _images(channels, 16, count=5)
    magnitudes = torch.linspace(low, high, 5)
    out = apply_strong_op(name, images, magnitudes)
    assert out.shape == images.shape and out.dtype == torch.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    # Each image gets its own magnitude: the batch equals the op applied one by one.
    for index in range(5):
        alone = apply_strong_op(name, images[index : index + 1], magnitudes[index : index + 1])
        torch.testing.assert_close(out[index : index + 1], alone, atol=1e-5, rtol=0)


def _torchvision_op(name: str, image: torch.Tensor, magnitude: float) -> torch.Tensor:
    """Operation ``name`` of the pool with ``magnitude`` on one image ``[1, C, H, W]``, by
    torchvision's functional ops, with the meaning the pool gives the magnitude (the authors'
    PIL ops): rotate by that many degrees counter-clockwise; shear by that slope; translate by
    that share of the side, the picture moving left (up) for a positive value, as PIL's
    ``transform(AFFINE, (1, 0, v, 0, 1, 0))`` does; the enhancement factors of
    ``ImageEnhance``; solarize above that threshold; keep that many bits."""
    side_x, side_y = image.shape[-1], image.shape[-2]
    bilinear = TV.InterpolationMode.BILINEAR
    affine = dict(angle=0.0, translate=[0.0, 0.0], scale=1.0, shear=[0.0, 0.0], interpolation=bilinear)
    if name == "rotate":
        return TVF.rotate(image, magnitude, interpolation=bilinear)
    if name in ("shear_x", "shear_y"):
        shear = [0.0, 0.0]
        shear[name == "shear_y"] = math.degrees(math.atan(magnitude))
        return TVF.affine(image, **{**affine, "shear": shear})
    if name in ("translate_x", "translate_y"):
        shift = [-magnitude * side_x, 0.0] if name == "translate_x" else [0.0, -magnitude * side_y]
        return TVF.affine(image, **{**affine, "translate": shift})
    enhance = {"brightness": TVF.adjust_brightness, "contrast": TVF.adjust_contrast,
               "color": TVF.adjust_saturation, "sharpness": TVF.adjust_sharpness}
    if name in enhance:
        return enhance[name](image, magnitude)
    if name == "solarize":
        return TVF.solarize(image, magnitude)
    as_uint8 = (image * 255).round().to(torch.uint8)
    if name == "posterize":
        return TVF.posterize(as_uint8, int(round(magnitude))).float() / 255
    if name == "equalize":
        return TVF.equalize(as_uint8).float() / 255
    if name == "autocontrast":
        return TVF.autocontrast(image)
    assert name == "identity"
    return image


@pytest.mark.parametrize("name", sorted(STRONG_OPS))
@pytest.mark.parametrize("channels", [1, 3])
def test_every_strong_op_equals_torchvision_on_the_same_magnitude(name: str, channels: int) -> None:
    """Each image of a batch through the pool's op with its own magnitude is what torchvision's
    op gives with that magnitude: a wrong rotation sign, a doubled shift or a factor applied
    the wrong way round fails here (7 magnitudes across the op's range, ends included)."""
    low, high = STRONG_OPS[name]
    images = 0.2 + 0.6 * _images(channels, 16, count=7)
    magnitudes = torch.linspace(low, high, 7)
    out = apply_strong_op(name, images, magnitudes)
    for index, magnitude in enumerate(magnitudes.tolist()):
        expected = _torchvision_op(name, images[index : index + 1], magnitude)
        torch.testing.assert_close(out[index : index + 1], expected, atol=2e-5, rtol=0, msg=f"{name} {magnitude}")


def test_translate_moves_the_picture_by_the_share_of_the_side() -> None:
    """A shift of 0.125 of a 16 px side is exactly 2 px: a bright column moves from 8 to 6
    (left for translate_x, as PIL's affine transform with offset +2 moves it)."""
    image = torch.zeros(1, 1, 16, 16)
    image[..., 8] = 1.0
    moved = apply_strong_op("translate_x", image, torch.tensor([0.125]))
    assert moved[0, 0, 4].argmax().item() == 6 and moved.max() == pytest.approx(1.0)
    moved = apply_strong_op("translate_y", image.transpose(-1, -2), torch.tensor([-0.125]))
    assert moved[0, 0, :, 4].argmax().item() == 10


def test_simclr_rotation_turns_the_view_as_torchvision_rotates(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the crop drawn as the whole image (area 1, aspect 1, centred), SimCLR's view turned
    by r degrees is torchvision's rotation by r, for r drawn as 12 and -12."""
    from scan_core.augment import simclr

    images = 0.2 + 0.6 * _images(1, 16, count=2)
    # random_resized_crop draws: area, log aspect, centre x, centre y, then the angle.
    draws = iter([torch.ones(2), torch.zeros(2), torch.zeros(2), torch.zeros(2), torch.tensor([12.0, -12.0])])
    monkeypatch.setattr(simclr, "uniform", lambda count, low, high, generator: next(draws))
    turned = simclr.random_resized_crop(images, 0.6, False, torch.Generator().manual_seed(0), rotation=15.0)
    for index, angle in enumerate((12.0, -12.0)):
        expected = TVF.rotate(images[index : index + 1], angle, interpolation=TV.InterpolationMode.BILINEAR)
        torch.testing.assert_close(turned[index : index + 1], expected, atol=2e-5, rtol=0)


def test_strong_ops_keep_extreme_inputs_in_range() -> None:
    images = torch.stack([torch.zeros(3, 8, 8), torch.ones(3, 8, 8), _images(3, 8, count=1)[0]])
    for name, (low, high) in STRONG_OPS.items():
        for magnitude in (low, high):
            out = apply_strong_op(name, images, torch.full((3,), magnitude))
            assert out.min() >= 0.0 and out.max() <= 1.0, name
            assert torch.isfinite(out).all(), name


@pytest.mark.parametrize("channels", [1, 3])
def test_simclr_view_colours_stay_in_range_before_normalising(channels: int) -> None:
    # Brightness/contrast factors up to 1 + jitter_strength must not push pixels past 1.
    images = _images(channels, 16, count=32)
    settings = AugmentSettings(mean=(0.0,) * channels, std=(1.0,) * channels, jitter_strength=1.0)
    views = simclr_view(images, settings, torch.Generator().manual_seed(0))
    assert views.min() >= 0.0 and views.max() <= 1.0
    assert (views == 1.0).any()  # bright pixels were brightened up to the clamp


def test_identity_op_returns_input_and_unknown_op_raises() -> None:
    images = _images(3, 8)
    assert torch.equal(apply_strong_op("identity", images, torch.zeros(6)), images)
    with pytest.raises(ValueError, match="unknown strong augmentation"):
        apply_strong_op("invert", images, torch.zeros(6))


def _ramps(count: int, size: int = 32) -> torch.Tensor:
    """Grey images brightening from left (0.1) to right (0.5)."""
    ramp = torch.linspace(0.1, 0.5, size).view(1, 1, 1, size)
    return ramp.expand(count, 3, size, size).clone()


def _mirrored(views: torch.Tensor) -> torch.Tensor:
    quarter = views.shape[-1] // 4
    return views[..., :quarter].mean(dim=(1, 2, 3)) > views[..., -quarter:].mean(dim=(1, 2, 3))


IDENTITY_NORM = dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


@pytest.mark.parametrize(
    "view, extra",
    [("simclr", {}), ("strong", {"strong_ops": 0, "cutout_fraction": 0})],
)
def test_hflip_false_never_mirrors_and_true_does(view: str, extra: dict) -> None:
    images = _ramps(64)
    never = VIEWS[view](images, AugmentSettings(**IDENTITY_NORM, hflip=False, **extra), torch.Generator().manual_seed(0))
    sometimes = VIEWS[view](images, AugmentSettings(**IDENTITY_NORM, hflip=True, **extra), torch.Generator().manual_seed(0))
    assert not _mirrored(never).any()
    assert 10 < int(_mirrored(sometimes).sum()) < 54


def test_simclr_rotation_zero_draws_nothing_extra_and_positive_turns_the_view() -> None:
    from scan_core.augment.simclr import random_resized_crop

    images = torch.zeros(64, 1, 16, 16)
    images[:, :, :, 7:9] = 1.0  # a vertical bar
    plain_generator, zero_generator = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    plain = random_resized_crop(images, 1.0, False, plain_generator)
    assert torch.equal(random_resized_crop(images, 1.0, False, zero_generator, rotation=0.0), plain)
    assert torch.equal(plain_generator.get_state(), zero_generator.get_state())
    turned = random_resized_crop(images, 1.0, False, torch.Generator().manual_seed(3), rotation=30.0)
    columns_hit = (turned[:, 0] > 0.1).any(dim=1).sum(dim=1)  # a slanted bar spans more columns
    assert (columns_hit > (plain[:, 0] > 0.1).any(dim=1).sum(dim=1)).float().mean() > 0.5
