"""The recipe that follows the images: one rule of channels, native side and image count,
two named recipes, and what each makes of the keys it sets."""

from __future__ import annotations

import pytest

from scan_core import recipes
from scan_core.names import BACKBONES
from scan_core.recipes import (PHOTO, RECIPE_KEYS, RECIPES, SMALL_GRAYSCALE, RecipeChoice, choose_recipe,
                               decide_recipe, recipe_values, working_side)


@pytest.mark.parametrize("channels, side, count, expected", [
    (1, 8, 1797, SMALL_GRAYSCALE),  # digits
    (1, 28, 70000, SMALL_GRAYSCALE),  # Fashion-MNIST
    (3, 128, 2000, PHOTO),  # a folder of colour photos
    (3, 32, 50000, PHOTO),  # CIFAR
    (1, 128, 500, PHOTO),  # grayscale photos: larger than a symbol
    (1, 32, 100, SMALL_GRAYSCALE),  # the limit is inclusive
    (1, 33, 100, PHOTO),
    (3, 8, 100, PHOTO),  # colour, however small
])
def test_the_rule_follows_channels_and_native_side(channels, side, count, expected):
    assert choose_recipe(channels, side, count) == expected


def test_small_grayscale_is_todays_digits_recipe():
    values = recipe_values(SMALL_GRAYSCALE, native_side=8, num_train=1797)
    assert values == {"data.image_size": 8, "augment.hflip": False, "augment.rotation": 15.0,
                      "augment.crop_min_scale": 0.6, "augment.jitter_strength": 0.4, "pretext.backbone": "small_cnn",
                      "scan.update_backbone": True, "scan.augmentation": "strong", "scan.lr": 5e-4,
                      "pretext.epochs": 100, "scan.epochs": 40, "selflabel.epochs": 20}
    assert recipe_values(SMALL_GRAYSCALE, 28, 60000)["data.image_size"] == 28
    assert recipe_values(SMALL_GRAYSCALE, 96, 5000)["data.image_size"] == 64  # today's cap


def test_photo_mirrors_stays_upright_and_works_at_32_px():
    values = recipe_values(PHOTO, native_side=128, num_train=2000)
    assert values == {"data.image_size": 32, "augment.hflip": True, "augment.rotation": 0.0,
                      "augment.crop_min_scale": 0.35, "augment.jitter_strength": 0.5, "pretext.backbone": "small_cnn",
                      "scan.update_backbone": False, "scan.augmentation": "none", "scan.lr": 1e-2,
                      "pretext.epochs": 75, "scan.epochs": 90, "selflabel.epochs": 8}
    # Budgets keep today's floors and caps.
    assert recipe_values(PHOTO, 32, 1_000_000)["pretext.epochs"] == 20
    assert recipe_values(PHOTO, 32, 10)["selflabel.epochs"] == 200


def test_every_recipe_sets_every_recipe_key_with_a_known_backbone():
    for name, recipe in RECIPES.items():
        assert set(recipe_values(name, 64, 1000)) == set(RECIPE_KEYS)
        assert recipe.backbone in BACKBONES


@pytest.mark.parametrize("recipe, side, expected", [
    ("auto", 8, 8), ("auto", 28, 28), ("auto", 32, 32), ("auto", 96, 32), ("auto", 4000, 32),
    (SMALL_GRAYSCALE, 96, 64), (SMALL_GRAYSCALE, 8, 8), (PHOTO, 8, 8), (PHOTO, 500, 32),
])
def test_working_side_is_known_before_the_channels(recipe, side, expected):
    assert working_side(recipe, side) == expected
    if recipe == "auto":  # whatever channels decoding finds, the chosen recipe agrees
        for channels in (1, 3):
            assert working_side(choose_recipe(channels, side, 100), side) == expected


def test_a_table_whose_small_sides_would_depend_on_channels_is_refused(monkeypatch):
    photo = RECIPES[PHOTO]
    monkeypatch.setitem(RECIPES, PHOTO, type(photo)(**{**photo.__dict__, "max_image_size": 24}))
    with pytest.raises(ValueError, match="max_image_size 24"):
        recipes._check_table()


def test_data_recipe_forces_a_recipe_and_says_so():
    forced = decide_recipe(PHOTO, channels=1, native_side=8, num_images=1797, num_train=1797)
    assert forced.name == PHOTO and forced.reason == "data.recipe: photo"
    assert forced.values["augment.hflip"] is True and forced.values["data.image_size"] == 8
    assert decide_recipe(SMALL_GRAYSCALE, 3, 128, 2000, 2000).values["data.image_size"] == 64
    with pytest.raises(ValueError, match="data.recipe = 'cartoon'"):
        decide_recipe("cartoon", 1, 8, 10, 10)


def test_the_choice_round_trips_through_dataset_json_and_describes_itself():
    choice = decide_recipe("auto", channels=3, native_side=128, num_images=1785, num_train=1785)
    assert RecipeChoice.from_dict(choice.as_dict()) == choice
    assert choice.as_dict()["epoch_budgets"]["pretext"] == [150_000, 20, 500]
    line = choice.describe()
    assert line.startswith("recipe photo (3 channels, native side 128 px, 1,785 images; colour): ")
    assert ("hflip on, rotation 0, crop 0.35, jitter 0.5, 32 px, small_cnn, SCAN heads on cached features of a "
            "frozen backbone, epochs 84/100/9") in line
    digits = decide_recipe("auto", 1, 8, 1797, 1797).describe()
    assert digits.startswith("recipe small_grayscale (1 channel, native side 8 px, 1,797 images; ")
    assert "hflip off, rotation 15, crop 0.6, jitter 0.4, 8 px, small_cnn, SCAN strong views, epochs 100/40/20" in digits
    assert "larger than 32 px" in decide_recipe("auto", 1, 128, 500, 500).reason
    assert ", 96 px (data.image_size), small_cnn," in choice.describe(image_size=96)
