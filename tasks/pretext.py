"""pretext: train the backbone with SimCLR on the training images."""

from __future__ import annotations

import json
from pathlib import Path

from prefect import get_run_logger

from scan_core.checkpoint import TrainingCheckpoint, atomic_write_text
from scan_core.defaults import describe_auto, resolve_stage
from scan_core.model_files import save_model
from scan_core.training.pretext import PretextSettings, train_pretext
from tasks.common import stage_key, stage_task
from tasks.progress import epoch_logger
from tasks.prepared import augment_settings, checkpoint_file, device, load_prepared
from tasks.stages import group

PRETEXT_DIR = Path("artifacts/pretext")
MODEL_FILE = PRETEXT_DIR / "model.pt"


@stage_task("pretext")
def pretext(params: dict, inputs: dict) -> None:
    logger = get_run_logger()
    prepared = load_prepared()
    values = group(params, "pretext")
    resolved = resolve_stage("pretext", values, len(prepared.train_rows))
    logger.info(describe_auto("pretext", values, resolved))
    settings = PretextSettings(**resolved)
    checkpoint = TrainingCheckpoint(checkpoint_file("pretext"), stage_key("pretext", params, inputs))
    model, history = train_pretext(
        prepared.images[prepared.train_rows],
        settings,
        augment_settings(prepared.info, group(params, "augment")),
        checkpoint,
        device(),
        on_epoch=epoch_logger(logger, "pretext", settings.epochs, lambda record: f"loss {record['loss']:.4f}"),
    )
    save_model(MODEL_FILE, model.cpu(), backbone=settings.backbone, in_channels=prepared.info["channels"],
               projection_dim=settings.projection_dim)
    atomic_write_text(PRETEXT_DIR / "history.json", json.dumps(history, indent=1))
    atomic_write_text(PRETEXT_DIR / "settings.json", json.dumps(resolved, indent=1))
    checkpoint.discard()
