"""embed: L2-normalised pretext features of every image, for mining and the k-means baseline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch.nn.functional as F

from scan_core.augment import AugmentSettings
from scan_core.checkpoint import atomic_path
from scan_core.model_files import load_contrastive_model
from scan_core.training.common import compute_features
from tasks.common import stage_task
from tasks.prepared import device, load_prepared
from tasks.pretext import MODEL_FILE
from tasks.stages import group

EMBEDDINGS_FILE = Path("artifacts/embed/embeddings.npy")


@stage_task("embed")
def embed(params: dict, inputs: dict) -> None:
    prepared = load_prepared()
    normalisation = AugmentSettings(mean=tuple(prepared.info["mean"]), std=tuple(prepared.info["std"]))
    model = load_contrastive_model(MODEL_FILE)[0].to(device())
    features = compute_features(model, prepared.images, normalisation, group(params, "embed")["batch_size"], device())
    with atomic_path(EMBEDDINGS_FILE) as temporary:
        with open(temporary, "wb") as handle:
            np.save(handle, F.normalize(features, dim=1).numpy().astype(np.float32))
