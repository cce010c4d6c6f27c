"""How a training stage is set up: its augmentation settings and where it resumes from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scan_core.augment.settings import AugmentSettings


def augment_settings(info: dict[str, Any], augment: dict[str, Any]) -> AugmentSettings:
    """Augmentation settings from params plus the data set's own channel statistics."""
    return AugmentSettings(mean=tuple(info["mean"]), std=tuple(info["std"]), **augment)


def checkpoint_file(stage: str) -> Path:
    return Path(".scan_cache/checkpoints") / f"{stage}.pt"
