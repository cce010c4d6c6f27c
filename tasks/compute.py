"""How a training stage is set up: its augmentation settings and where it resumes from."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from scan_core.augment.settings import AugmentSettings
from scan_core.defaults import describe_auto, resolve_augment
from tasks.prepared import recorded_recipe


def augment_settings(stage: str, info: dict[str, Any], augment: dict[str, Any],
                     logger: logging.Logger | logging.LoggerAdapter) -> AugmentSettings:
    """Augmentation settings from the stage's ``augment`` params, ``auto`` ones from the recipe
    recorded in ``info`` (``dataset.json``), plus the data set's own channel statistics; the
    values in force are logged (``pretext augment settings: hflip=False (auto: ...), ...``)."""
    recipe = recorded_recipe(info)
    resolved = resolve_augment(augment, recipe)
    logger.info(describe_auto(stage, augment, resolved, recipe, group="augment"))
    return AugmentSettings(mean=tuple(info["mean"]), std=tuple(info["std"]), **resolved)


def checkpoint_file(stage: str) -> Path:
    return Path(".scan_cache/checkpoints") / f"{stage}.pt"
