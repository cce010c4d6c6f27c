"""How a training stage is set up: its augmentation settings and where it resumes from."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from scan_core.augment.settings import AugmentSettings
from scan_core.defaults import describe_auto, resolve_augment
from scan_core.names import is_foundation
from tasks.prepared import recorded_recipe


def pixel_statistics(info: dict[str, Any], backbone: str) -> dict[str, tuple[float, ...]]:
    """The ``mean`` and ``std`` the stages normalise images with before ``backbone``: the data
    set's own channel statistics, or none at all (0 and 1) for a foundation model, which
    normalises with the statistics its weights were trained with (``scan_core.foundation``)."""
    if is_foundation(backbone):
        return {"mean": (0.0,) * len(info["mean"]), "std": (1.0,) * len(info["std"])}
    return {"mean": tuple(info["mean"]), "std": tuple(info["std"])}


def augment_settings(stage: str, info: dict[str, Any], augment: dict[str, Any],
                     logger: logging.Logger | logging.LoggerAdapter, backbone: str = "") -> AugmentSettings:
    """Augmentation settings from the stage's ``augment`` params, ``auto`` ones from the recipe
    recorded in ``info`` (``dataset.json``), plus the channel statistics for ``backbone``
    (``pixel_statistics``); the values in force are logged (``pretext augment settings:
    hflip=False (auto: ...), ...``)."""
    recipe = recorded_recipe(info)
    resolved = resolve_augment(augment, recipe)
    logger.info(describe_auto(stage, augment, resolved, recipe, group="augment"))
    return AugmentSettings(**pixel_statistics(info, backbone), **resolved)


def checkpoint_file(stage: str) -> Path:
    return Path(".scan_cache/checkpoints") / f"{stage}.pt"
