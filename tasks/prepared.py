"""Reading the prepare stage's artifacts back: images, manifest and data set description."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from scan_core.augment import AugmentSettings
from scan_core.training.common import resolve_device

PREPARE_DIR = Path("artifacts/prepare")
IMAGES_FILE = PREPARE_DIR / "images.npy"
MANIFEST_FILE = PREPARE_DIR / "manifest.parquet"
DATASET_FILE = PREPARE_DIR / "dataset.json"


@dataclass
class Prepared:
    images: torch.Tensor
    manifest: pd.DataFrame
    info: dict[str, Any]

    @property
    def train_rows(self) -> np.ndarray:
        return np.flatnonzero(self.manifest["in_train"].to_numpy())

    @property
    def eval_rows(self) -> np.ndarray:
        return np.flatnonzero(self.manifest["in_eval"].to_numpy())

    @property
    def labels(self) -> np.ndarray | None:
        return self.manifest["label"].to_numpy() if self.info["has_labels"] else None


def load_prepared() -> Prepared:
    return Prepared(
        images=torch.from_numpy(np.load(IMAGES_FILE)),
        manifest=pd.read_parquet(MANIFEST_FILE),
        info=json.loads(DATASET_FILE.read_text()),
    )


def augment_settings(info: dict[str, Any], augment: dict[str, Any]) -> AugmentSettings:
    """Augmentation settings from params plus the data set's own channel statistics."""
    return AugmentSettings(mean=tuple(info["mean"]), std=tuple(info["std"]), **augment)


def device() -> torch.device:
    """``SCAN_DEVICE`` (cpu, cuda, cuda:1...) or the GPU when there is one; not a param, so
    moving a run to another machine does not invalidate its cache."""
    return resolve_device(os.environ.get("SCAN_DEVICE", "auto"))


def checkpoint_file(stage: str) -> Path:
    return Path(".scan_cache/checkpoints") / f"{stage}.pt"
