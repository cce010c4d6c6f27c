"""What the studies read from a DVC project whose prepare, pretext, embed and mine stages have run."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from scan_core.augment.settings import AugmentSettings
from scan_core.mining import read_neighbor_matrix
from scan_core.model_files import load_contrastive_model


@dataclass
class FinishedRun:
    images: torch.Tensor
    labels: np.ndarray  # read only to score
    augment: AugmentSettings
    pretext: nn.Module
    neighbors: np.ndarray  # [N, num_neighbors] row indices
    embeddings: np.ndarray


def load_finished_run(root: Path, num_neighbors: int = 5) -> FinishedRun:
    info = json.loads((root / "artifacts/prepare/dataset.json").read_text())
    pretext, _ = load_contrastive_model(root / "artifacts/pretext/model.pt")
    return FinishedRun(
        images=torch.from_numpy(np.load(root / "artifacts/prepare/images.npy")),
        labels=pd.read_parquet(root / "artifacts/prepare/manifest.parquet")["label"].to_numpy(),
        augment=AugmentSettings(mean=tuple(info["mean"]), std=tuple(info["std"])),
        pretext=pretext,
        neighbors=read_neighbor_matrix(root / "artifacts/mine/neighbors.parquet", num_neighbors)[1],
        embeddings=np.load(root / "artifacts/embed/embeddings.npy"),
    )
