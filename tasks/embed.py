"""embed: L2-normalised pretext features of every image: the projection head's output (the
k-means baseline and prototypes) and the backbone's (what mining uses by default)."""

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
BACKBONE_FEATURES_FILE = Path("artifacts/embed/backbone_features.npy")


@stage_task("embed")
def embed(params: dict, inputs: dict) -> None:
    prepared = load_prepared()
    normalisation = AugmentSettings(mean=tuple(prepared.info["mean"]), std=tuple(prepared.info["std"]))
    model = load_contrastive_model(MODEL_FILE)[0].to(device())
    batch_size = group(params, "embed")["batch_size"]
    for network, path in ((model, EMBEDDINGS_FILE), (model.backbone, BACKBONE_FEATURES_FILE)):
        features = compute_features(network, prepared.images, normalisation, batch_size, device())
        with atomic_path(path) as temporary:
            with open(temporary, "wb") as handle:
                np.save(handle, F.normalize(features, dim=1).numpy().astype(np.float32))
