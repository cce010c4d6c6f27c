"""embed: L2-normalised pretext features of every image: the projection head's output (the
k-means baseline and prototypes) and the backbone's (what mining uses by default).

The backbone runs once; the projection head runs on its features. A pretrained backbone
(``pretext.method: pretrained``) has no projection head: both files then hold its backbone
features.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from prefect import get_run_logger

from scan_core.augment.settings import AugmentSettings
from scan_core.model_files import load_contrastive_model
from scan_core.training.common import compute_features
from tasks.artifacts import publish_key_numbers
from tasks.common import StagedOutputs, stage_task
from tasks.compute import pixel_statistics
from tasks.device import device
from tasks.paths import BACKBONE_FEATURES_FILE, EMBEDDINGS_FILE, PRETEXT_MODEL_FILE
from tasks.prepared import load_prepared
from tasks.stages import group


@stage_task("embed")
def embed(params: dict, inputs: dict, out: StagedOutputs) -> None:
    prepared = load_prepared()
    model, description = load_contrastive_model(PRETEXT_MODEL_FILE)
    model = model.to(device())
    normalisation = AugmentSettings(**pixel_statistics(prepared.info, description["backbone"]))
    batch_size = group(params, "embed")["batch_size"]
    numbers: dict = {"images": len(prepared.images)}
    if "preprocessing" in description:  # a foundation model: its own size and statistics, applied inside it
        get_run_logger().info("embed: %s, %s", description["backbone"],
                              model.backbone.preprocessing.describe(prepared.info["image_size"]))
        numbers |= {f"input {key}": value for key, value in description["preprocessing"].items()}
    # One pass through the backbone; the projection head (identity for a pretrained
    # backbone) then runs on its features, which costs next to nothing.
    backbone_features = compute_features(model.backbone, prepared.images, normalisation, batch_size, device())
    with torch.no_grad():
        model.head.eval()
        projections = torch.cat([model.head(chunk.to(device())).float().cpu()
                                 for chunk in backbone_features.split(batch_size)])
    for path, features in ((EMBEDDINGS_FILE, projections), (BACKBONE_FEATURES_FILE, backbone_features)):
        np.save(out(path), F.normalize(features, dim=1).numpy().astype(np.float32))
        numbers[f"{path.stem} dims"] = int(features.shape[1])
    publish_key_numbers("embed", numbers)
