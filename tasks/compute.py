"""How a stage computes: on which device, with which augmentation settings, resuming from where."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from scan_core.augment import AugmentSettings
from scan_core.training.common import resolve_device


def augment_settings(info: dict[str, Any], augment: dict[str, Any]) -> AugmentSettings:
    """Augmentation settings from params plus the data set's own channel statistics."""
    return AugmentSettings(mean=tuple(info["mean"]), std=tuple(info["std"]), **augment)


def device() -> torch.device:
    """``SCAN_DEVICE`` (cpu, cuda, cuda:1...) or the GPU when there is one; not a param, so
    moving a run to another machine does not invalidate its cache."""
    return resolve_device(os.environ.get("SCAN_DEVICE", "auto"))


def checkpoint_file(stage: str) -> Path:
    return Path(".scan_cache/checkpoints") / f"{stage}.pt"
