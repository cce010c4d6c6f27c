"""What `auto` becomes (rules of the recorded recipe and the number of images only), and one
source of default values for the schema, params.yaml and the settings dataclasses."""

from __future__ import annotations

import dataclasses

import pytest

from scan_core.augment.settings import AugmentSettings
from scan_core.config import Params
from scan_core.defaults import (
    PARAM_DEFAULTS,
    entropy_weight_ladder,
    auto_batch_size,
    auto_epochs,
    auto_image_size,
    describe_auto,
    resolve_augment,
    resolve_stage,
)
from scan_core.recipes import DEFAULT_RECIPE, RECIPES, decide_recipe
from scan_core.training.clustering import ScanSettings
from scan_core.training.pretext import PretextSettings
from scan_core.training.selflabel import SelflabelSettings


def test_image_size_is_the_images_own_side_capped_at_64() -> None:
    assert auto_image_size(8) == 8
    assert auto_image_size(28) == 28
    assert auto_image_size(96) == 64
    assert auto_image_size(4000) == 64


def test_epochs_reproduce_the_digits_recipe_and_shrink_with_more_images() -> None:
    assert [auto_epochs(stage, 1797) for stage in ("pretext", "scan", "selflabel")] == [100, 40, 20]
    assert auto_epochs("pretext", 5000) == 36
    assert auto_epochs("pretext", 100_000) == 20  # the floor
    assert auto_epochs("pretext", 10) == 500  # the ceiling
    assert auto_epochs("scan", 100) == 100


def test_batch_size_leaves_at_least_four_batches_per_epoch() -> None:
    assert auto_batch_size("pretext", 1797) == 256
    assert auto_batch_size("scan", 1797) == 128
    assert auto_batch_size("pretext", 600) == 128
    assert auto_batch_size("scan", 100) == 16  # the floor
    for count in (64, 300, 1000, 5000):
        assert count // auto_batch_size("selflabel", count) >= 4 or auto_batch_size("selflabel", count) == 16


def test_resolve_replaces_only_auto_and_describe_marks_it() -> None:
    values = {"epochs": "auto", "batch_size": 64, "lr": 0.1, "seed": 3}
    resolved = resolve_stage("scan", values, 1797)
    assert resolved == {"epochs": 40, "batch_size": 64, "lr": 0.1, "seed": 3}
    line = describe_auto("scan", values, resolved)
    assert line == "scan settings: epochs=40 (auto), batch_size=64, lr=0.1"


def test_unknown_stage_is_an_error() -> None:
    with pytest.raises(KeyError):
        auto_epochs("evaluate", 100)


# The recipe's keys, and one source of defaults.

DIGITS = decide_recipe("auto", channels=1, native_side=8, num_images=1797, num_train=1797)
PHOTOS = decide_recipe("auto", channels=3, native_side=128, num_images=2000, num_train=2000)
SETTINGS = {"pretext": PretextSettings, "scan": ScanSettings, "selflabel": SelflabelSettings,
            "augment": AugmentSettings}


def _defaults(group: str) -> dict:
    return dict(getattr(Params(), group))


def test_digits_resolve_to_exactly_todays_settings():
    """What pretext, scan and selflabel logged and wrote to settings.json / summary.json for
    the digits default before recipes, and the augmentations each of them used; since issue 19
    SCAN's heads each have their own entropy weight."""
    today = {
        "pretext": {"method": "simclr", "weights": None, "backbone": "small_cnn", "epochs": 100, "batch_size": 256,
                    "lr": 0.4, "weight_decay": 0.0001, "temperature": 0.5, "projection_dim": 128, "seed": 0},
        "scan": {"num_neighbors": 5, "entropy_weight": 5.0, "num_clusters": 10,
                 "num_heads": 10, "head": "linear", "epochs": 40, "batch_size": 128, "lr": 0.0005,
                 "weight_decay": 0.0001, "update_backbone": True, "init": "kmeans", "selection": "scan_loss", "cluster_sizes": "equal",
                 "augmentation": "strong", "seed": 0},
        "selflabel": {"threshold": 0.99, "class_balance": True, "epochs": 20, "batch_size": 256, "lr": 0.0001,
                      "weight_decay": 0.0001, "ema": 0.0, "patience": 10, "neighbor_consensus": 0.0, "teacher": "online",
                      "seed": 0},
    }
    for stage, expected in today.items():
        assert resolve_stage(stage, _defaults(stage), 1797, DIGITS) == expected
    augment = resolve_augment(_defaults("augment"), DIGITS)
    assert augment == {"hflip": False, "crop_min_scale": 0.6, "jitter_strength": 0.4, "rotation": 15.0,
                       "strong_ops": 2, "cutout_fraction": 0.25}


def test_photos_resolve_to_the_photo_recipe():
    resolved = resolve_stage("pretext", _defaults("pretext"), 2000, PHOTOS)
    assert (resolved["backbone"], resolved["epochs"], resolved["batch_size"]) == ("small_cnn", 75, 256)
    scan = resolve_stage("scan", _defaults("scan"), 2000, PHOTOS)
    assert (scan["epochs"], scan["update_backbone"], scan["augmentation"], scan["lr"]) == (90, False, "none", 1e-2)
    assert resolve_stage("selflabel", _defaults("selflabel"), 2000, PHOTOS)["epochs"] == 8
    augment = resolve_augment(_defaults("augment"), PHOTOS)
    assert (augment["hflip"], augment["rotation"], augment["crop_min_scale"], augment["jitter_strength"]) == \
        (True, 0.0, 0.35, 0.5)


def test_explicit_values_win_over_the_recipe():
    pretext = {**_defaults("pretext"), "backbone": "resnet18_cifar", "epochs": 7}
    assert resolve_stage("pretext", pretext, 2000, PHOTOS)["backbone"] == "resnet18_cifar"
    assert resolve_stage("pretext", pretext, 2000, PHOTOS)["epochs"] == 7
    augment = {**_defaults("augment"), "hflip": False, "rotation": 10.0}
    resolved = resolve_augment(augment, PHOTOS)
    assert (resolved["hflip"], resolved["rotation"], resolved["crop_min_scale"]) == (False, 10.0, 0.35)


def test_describe_marks_what_the_recipe_chose():
    augment = {"hflip": "auto", "strong_ops": 2}
    line = describe_auto("selflabel", augment, resolve_augment(augment, PHOTOS), PHOTOS, group="augment")
    assert line == "selflabel augment settings: hflip=True (auto: photo), strong_ops=2"
    values = {"epochs": "auto", "batch_size": "auto", "lr": 0.1}
    line = describe_auto("scan", values, resolve_stage("scan", values, 2000, PHOTOS), PHOTOS)
    assert line == "scan settings: epochs=90 (auto: photo), batch_size=128 (auto), lr=0.1"


def test_entropy_weight_auto_is_one_weight_per_head_from_5_down_to_half():
    ladder = entropy_weight_ladder(10)
    assert len(ladder) == 10 and ladder[0] == 5.0 and ladder[-1] == pytest.approx(0.5)
    assert all(ladder[index + 1] / ladder[index] == pytest.approx(0.1 ** (1 / 9), abs=1e-4) for index in range(9))
    assert entropy_weight_ladder(1) == (5.0,)
    values = {**_defaults("scan"), "num_heads": 4, "entropy_weight": "auto"}
    assert resolve_stage("scan", values, 2000)["entropy_weight"] == entropy_weight_ladder(4)
    assert resolve_stage("scan", {**values, "entropy_weight": 2.0}, 2000)["entropy_weight"] == 2.0


def test_param_defaults_are_the_schemas():
    assert PARAM_DEFAULTS == Params().model_dump()


@pytest.mark.parametrize("group", list(SETTINGS))
def test_settings_dataclasses_default_to_the_schema(group):
    """Every field a settings dataclass shares with its params group defaults to the schema's
    value; where that is auto, to the default recipe's (for the recipe's keys) or to a number."""
    schema = _defaults(group)
    recipe = RECIPES[DEFAULT_RECIPE]
    for field in dataclasses.fields(SETTINGS[group]):
        if field.name not in schema:
            continue
        if schema[field.name] != "auto":
            assert field.default == schema[field.name], f"{group}.{field.name}"
        elif field.name in ("epochs", "batch_size"):
            assert isinstance(field.default, int) and field.default > 0, f"{group}.{field.name}"
        else:
            attribute = f"scan_{field.name}" if group == "scan" else field.name
            assert field.default == getattr(recipe, attribute), f"{group}.{field.name}"
