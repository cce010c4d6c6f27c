"""Recipes: the augmentations, resolution, backbone and training length that suit a kind of image.

Small grayscale symbols and colour photos want different things. Mirroring a digit makes
another symbol and turning it a little mimics handwriting; a photo mirrors freely, never
stands on its side, and needs smaller crops and stronger colour jitter before its features
stop following framing and lighting. One rule of the data alone (channel count, native side,
number of images; never the device, so that the same images give the same settings and the
same cache keys on every machine) picks one of the recipes in ``RECIPES``. ``prepare``
records the choice in ``artifacts/prepare/dataset.json``; later stages turn their ``auto``
keys into the recorded values (``scan_core.defaults``). An explicit value in params.yaml
always wins over the recipe, and ``data.recipe`` forces one.

This module imports nothing of the project, so the library's settings dataclasses can take
their concrete defaults from it without the params schema's dependencies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

AUTO = "auto"
SMALL_GRAYSCALE = "small_grayscale"
PHOTO = "photo"
# The recipe of the embedded default data set (digits), and so of the settings dataclasses.
DEFAULT_RECIPE = SMALL_GRAYSCALE
# The rule: single-channel images of at most this native side are small grayscale symbols.
SMALL_GRAYSCALE_MAX_SIDE = 32
TRAINING_STAGES = ("pretext", "scan", "selflabel")


@dataclass(frozen=True)
class EpochBudget:
    """Epochs that see about ``images_seen`` images in all (epochs x training images), so a
    stage takes about the same number of optimiser steps at any data size, kept within
    ``[min_epochs, max_epochs]``: the floor keeps large data sets from a token pass."""

    images_seen: int
    min_epochs: int
    max_epochs: int

    def epochs(self, num_images: int) -> int:
        return int(min(self.max_epochs, max(self.min_epochs, round(self.images_seen / max(num_images, 1)))))


@dataclass(frozen=True)
class Recipe:
    """What ``auto`` becomes for the keys in ``RECIPE_KEYS``, for one kind of image."""

    max_image_size: int  # data.image_size: the images' own side, at most this many px
    hflip: bool  # augment.hflip
    rotation: float  # augment.rotation, degrees either way
    crop_min_scale: float  # augment.crop_min_scale
    jitter_strength: float  # augment.jitter_strength
    backbone: str  # pretext.backbone
    scan_update_backbone: bool  # scan.update_backbone
    scan_augmentation: str  # scan.augmentation (none: heads on the frozen backbone's cached features)
    scan_lr: float  # scan.lr
    epochs: dict[str, EpochBudget]  # pretext.epochs, scan.epochs, selflabel.epochs


# The table. Edit values here: every run's prepare stage records what it chose, and the
# stages after it follow (this file is a code dependency of every stage).
RECIPES: dict[str, Recipe] = {
    # Digits, Fashion-MNIST, scanned symbols: the recipe every measured digits result used.
    # No mirroring (a mirrored digit is another symbol), turns of up to 15 degrees (handwriting
    # slants: neighbor purity at k = 5 rises from about 0.97 to 0.99 on digits), large crops
    # (a small crop of an 8 px digit shows nothing). Budgets: 100 / 40 / 20 epochs on digits.
    SMALL_GRAYSCALE: Recipe(
        max_image_size=64, hflip=False, rotation=15.0, crop_min_scale=0.6, jitter_strength=0.4,
        backbone="small_cnn", scan_update_backbone=True, scan_augmentation="strong", scan_lr=5e-4,
        epochs={"pretext": EpochBudget(180_000, 20, 500), "scan": EpochBudget(72_000, 10, 100),
                "selflabel": EpochBudget(36_000, 5, 200)},
    ),
    # Colour photos, and grayscale images larger than symbols: mirrored freely, upright, cropped
    # harder and jittered more (SimCLR's photo augmentations, a little milder for small images),
    # worked on at 32 px with the small CNN, budgets sized so that about 2,000 photos run the
    # whole pipeline in about 12 minutes on a 2-core CPU. SCAN trains only the heads, on the
    # frozen backbone's cached features: on 1,767 colour pictures SCAN on image views lost to
    # k-means on the same embeddings (ACC 0.371 vs 0.408) and heads on cached features won
    # (0.425); 150,000 pretext images seen instead of 60,000 lifted both (k-means 0.465, SCAN 0.484).
    PHOTO: Recipe(
        max_image_size=32, hflip=True, rotation=0.0, crop_min_scale=0.35, jitter_strength=0.5,
        backbone="small_cnn", scan_update_backbone=False, scan_augmentation="none", scan_lr=1e-2,
        epochs={"pretext": EpochBudget(150_000, 20, 500), "scan": EpochBudget(180_000, 10, 100),
                "selflabel": EpochBudget(16_000, 5, 200)},
    ),
}
RECIPE_NAMES = tuple(RECIPES)
# What scan's auto keys become over a foundation backbone (timm/..., open_clip/...), whatever the
# recipe: the heads train on its cached features, as in TEMI and SCAN's own ImageNet setting.
FOUNDATION_SCAN_VALUES = {"scan.update_backbone": False, "scan.augmentation": "none", "scan.lr": RECIPES[PHOTO].scan_lr}
# The params.yaml keys a recipe sets when they are ``auto``.
AUGMENT_KEYS = ("hflip", "rotation", "crop_min_scale", "jitter_strength")
SCAN_KEYS = ("update_backbone", "augmentation", "lr")
RECIPE_KEYS = ("data.image_size", *(f"augment.{key}" for key in AUGMENT_KEYS), "pretext.backbone",
               *(f"scan.{key}" for key in SCAN_KEYS), *(f"{stage}.epochs" for stage in TRAINING_STAGES))


def _check_table() -> None:
    """``prepare`` picks the working side before it has decoded a folder, so before it knows
    the channel count; under ``data.recipe: auto`` the side of an image small enough for
    either recipe must therefore be the same under both: its own side."""
    for name, recipe in RECIPES.items():
        if recipe.max_image_size < SMALL_GRAYSCALE_MAX_SIDE:
            raise ValueError(f"recipe {name}: max_image_size {recipe.max_image_size} is below "
                             f"SMALL_GRAYSCALE_MAX_SIDE ({SMALL_GRAYSCALE_MAX_SIDE}), so the working side of a small "
                             f"image would depend on its channel count, which prepare learns only after resizing")
        if set(recipe.epochs) != set(TRAINING_STAGES):
            raise ValueError(f"recipe {name}: epochs must give a budget for each of {', '.join(TRAINING_STAGES)}")


_check_table()


def choose_recipe(channels: int, native_side: int, num_images: int) -> str:
    """The rule: ``small_grayscale`` for single-channel images whose native side is at most
    32 px (digits, Fashion-MNIST, scanned symbols), ``photo`` for everything else: colour at
    any size, and grayscale larger than a symbol (a grayscale photo mirrors like a photo).

    ``native_side`` is the side before resizing (a folder's typical shorter side) and
    ``channels`` those of the stored images. ``num_images`` is recorded with the choice but
    does not change it yet: epochs already follow the count through the recipe's budgets.
    """
    del num_images
    if channels == 1 and native_side <= SMALL_GRAYSCALE_MAX_SIDE:
        return SMALL_GRAYSCALE
    return PHOTO


def working_side(recipe: str, native_side: int) -> int:
    """What ``data.image_size: auto`` becomes under ``recipe`` (``auto``, or a recipe name):
    the images' own side, at most the recipe's ``max_image_size``.

    With ``auto`` the channel count is not needed: above ``SMALL_GRAYSCALE_MAX_SIDE`` the
    rule gives ``photo`` whatever the channels, and at or below it every recipe keeps the
    images' own side (``_check_table``).
    """
    if recipe == AUTO:
        recipe = PHOTO if native_side > SMALL_GRAYSCALE_MAX_SIDE else SMALL_GRAYSCALE
    return max(1, min(int(native_side), RECIPES[recipe].max_image_size))


def recipe_values(name: str, native_side: int, num_train: int) -> dict[str, Any]:
    """The value of every key in ``RECIPE_KEYS`` under recipe ``name``, for images of
    ``native_side`` px of which ``num_train`` are trained on."""
    recipe = RECIPES[name]
    values: dict[str, Any] = {"data.image_size": working_side(name, native_side)}
    values |= {f"augment.{key}": getattr(recipe, key) for key in AUGMENT_KEYS}
    values["pretext.backbone"] = recipe.backbone
    values |= {f"scan.{key}": getattr(recipe, f"scan_{key}") for key in SCAN_KEYS}
    values |= {f"{stage}.epochs": recipe.epochs[stage].epochs(num_train) for stage in TRAINING_STAGES}
    return values


@dataclass(frozen=True)
class RecipeChoice:
    """The recipe ``prepare`` chose, why, from what, and the values its keys take: what it
    writes under ``recipe`` in ``dataset.json`` and later stages resolve ``auto`` from."""

    name: str
    reason: str
    channels: int
    native_side: int
    num_images: int
    values: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "reason": self.reason, "channels": self.channels, "native_side": self.native_side,
                "num_images": self.num_images, "values": dict(self.values),
                "epoch_budgets": {stage: [budget.images_seen, budget.min_epochs, budget.max_epochs]
                                  for stage, budget in RECIPES[self.name].epochs.items()}}

    def over_foundation_backbone(self, backbone: str) -> RecipeChoice:
        """This choice with scan's keys set for heads on the cached features of ``backbone``."""
        return RecipeChoice(name=self.name, reason=f"{self.reason}; heads on the frozen features of {backbone}",
                            channels=self.channels, native_side=self.native_side, num_images=self.num_images,
                            values={**self.values, **FOUNDATION_SCAN_VALUES})

    @classmethod
    def from_dict(cls, recorded: dict[str, Any]) -> RecipeChoice:
        return cls(name=recorded["name"], reason=recorded["reason"], channels=recorded["channels"],
                   native_side=recorded["native_side"], num_images=recorded["num_images"],
                   values=dict(recorded["values"]))

    def describe(self, image_size: int | None = None) -> str:
        """One line for prepare's log: the recipe, what the rule saw and the values it sets;
        ``image_size`` is an explicit ``data.image_size``, shown instead of the recipe's."""
        values = self.values
        side = f"{values['data.image_size']} px" if image_size is None else f"{image_size} px (data.image_size)"
        channels = f"{self.channels} channel" + ("" if self.channels == 1 else "s")
        epochs = "/".join(str(values[f"{stage}.epochs"]) for stage in TRAINING_STAGES)
        scan_mode = ("heads on cached features of a frozen backbone" if values["scan.augmentation"] == "none" else
                     f"{values['scan.augmentation']} views" + ("" if values["scan.update_backbone"] else ", frozen backbone"))
        budgets = "/".join(f"{RECIPES[self.name].epochs[stage].images_seen:,}" for stage in TRAINING_STAGES)
        return (f"recipe {self.name} ({channels}, native side {self.native_side} px, {self.num_images:,} images; "
                f"{self.reason}): hflip {'on' if values['augment.hflip'] else 'off'}, "
                f"rotation {values['augment.rotation']:g}, crop {values['augment.crop_min_scale']:g}, "
                f"jitter {values['augment.jitter_strength']:g}, {side}, "
                f"{values['pretext.backbone']}, SCAN {scan_mode}, epochs {epochs} (pretext/scan/selflabel; budgets of "
                f"{budgets} images seen)")


def decide_recipe(requested: str, channels: int, native_side: int, num_images: int,
                  num_train: int) -> RecipeChoice:
    """``data.recipe`` made concrete: ``requested`` itself when it names a recipe, else the
    rule's choice (``choose_recipe``), with its values for ``num_train`` training images."""
    if requested == AUTO:
        name = choose_recipe(channels, native_side, num_images)
        if name == SMALL_GRAYSCALE:
            reason = f"single-channel, at most {SMALL_GRAYSCALE_MAX_SIDE} px"
        elif channels == 1:
            reason = f"single-channel but larger than {SMALL_GRAYSCALE_MAX_SIDE} px"
        else:
            reason = "colour"
    elif requested in RECIPES:
        name, reason = requested, f"data.recipe: {requested}"
    else:
        raise ValueError(f"data.recipe = {requested!r} is invalid; valid: {AUTO}, {', '.join(RECIPE_NAMES)}")
    return RecipeChoice(name=name, reason=reason, channels=int(channels), native_side=int(native_side),
                        num_images=int(num_images), values=recipe_values(name, native_side, num_train))
