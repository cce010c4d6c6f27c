"""pretext: train the backbone with SimCLR on the training images."""

from __future__ import annotations

import json
from pathlib import Path

from prefect import get_run_logger

from scan_core.checkpoint import TrainingCheckpoint, atomic_write_text
from scan_core.model_files import save_model
from scan_core.training.pretext import PretextSettings, train_pretext
from tasks.common import stage_key, stage_task
from tasks.prepared import augment_settings, checkpoint_file, device, load_prepared
from tasks.stages import group

PRETEXT_DIR = Path("artifacts/pretext")
MODEL_FILE = PRETEXT_DIR / "model.pt"


@stage_task("pretext")
def pretext(params: dict, inputs: dict) -> None:
    logger = get_run_logger()
    prepared = load_prepared()
    settings = PretextSettings(**group(params, "pretext"))
    checkpoint = TrainingCheckpoint(checkpoint_file("pretext"), stage_key("pretext", params, inputs))
    model, history = train_pretext(
        prepared.images[prepared.train_rows],
        settings,
        augment_settings(prepared.info, group(params, "augment")),
        checkpoint,
        device(),
        on_epoch=lambda epoch, record: logger.info("pretext epoch %d: loss %.4f", epoch, record["loss"]),
    )
    save_model(MODEL_FILE, model.cpu(), backbone=settings.backbone, in_channels=prepared.info["channels"],
               projection_dim=settings.projection_dim)
    atomic_write_text(PRETEXT_DIR / "history.json", json.dumps(history, indent=1))
    checkpoint.discard()
