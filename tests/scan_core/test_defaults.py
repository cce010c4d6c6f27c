"""What `auto` becomes: rules of the image side and the number of images only."""

from __future__ import annotations

import pytest

from scan_core.defaults import (
    auto_batch_size,
    auto_epochs,
    auto_image_size,
    describe_auto,
    resolve_stage,
)


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
