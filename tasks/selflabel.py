"""selflabel: fine-tune the clustering model on its own confident predictions."""

from __future__ import annotations

import json
from functools import partial

from prefect import get_run_logger

from scan_core.checkpoint import TrainingCheckpoint
from scan_core.defaults import describe_auto, resolve_stage
from scan_core.evaluation import pseudo_label_report
from scan_core.model_files import load_clustering_model, save_model
from scan_core.training.multiprocess import describe
from scan_core.training.selflabel import SelflabelSettings, train_selflabel
from tasks.artifacts import publish_key_numbers
from tasks.common import StagedOutputs, stage_key, stage_task
from tasks.compute import augment_settings, checkpoint_file
from tasks.device import device, processes
from tasks.neighbors import training_neighbors
from tasks.paths import (SCAN_MODEL_FILE, SELFLABEL_CURVES_FILE, SELFLABEL_DIR, SELFLABEL_MODEL_FILE,
                         SELFLABEL_PREDICTIONS_FILE, SUMMARY_NAME)
from tasks.prepared import load_prepared
from tasks.progress import epoch_logger
from tasks.stage_predictions import write_predictions
from tasks.stages import group


def describe_epoch(record: dict) -> str:
    line = (f"loss {record['loss']:.4f}, {record['confident']} confident "
            f"(balance of their clusters {record['confident_balance']:.3f})")
    if "acc" in record:
        line += (f"; ACC {record['acc']:.3f}, pseudo-labels right {record['pseudo_label_accuracy']:.3f} "
                 f"(of their cluster's majority class {record['pseudo_label_purity']:.3f})")
    return line


@stage_task("selflabel")
def selflabel(params: dict, inputs: dict, out: StagedOutputs) -> None:
    logger = get_run_logger()
    prepared = load_prepared()
    values = group(params, "selflabel")
    # auto keys: the recipe prepare recorded (epochs) and the image count (batch size).
    resolved = resolve_stage("selflabel", values, len(prepared.train_rows), prepared.recipe)
    logger.info(describe_auto("selflabel", values, resolved, prepared.recipe))
    logger.info(describe("selflabel", processes(), device()))
    scan_model, description = load_clustering_model(SCAN_MODEL_FILE)
    # Heads the scan stage trained on a frozen backbone's cached features go on from them.
    settings = SelflabelSettings(**resolved, heads_on_features=description.get("heads_on_features", False))
    if settings.heads_on_features:
        logger.info("selflabel: the heads train on the frozen %s's cached features", description["backbone"])
    augment = augment_settings("selflabel", prepared.info, group(params, "augment"), logger, description["backbone"])
    checkpoint = TrainingCheckpoint(checkpoint_file("selflabel"), stage_key("selflabel", params, inputs))
    # With class subfolders, each epoch's ACC and pseudo-label accuracy are logged and kept in the
    # history for the curves; they never choose anything.
    probe = None if prepared.labels is None else partial(
        pseudo_label_report, prepared.labels[prepared.train_rows], threshold=settings.threshold)
    model, history = train_selflabel(
        scan_model,
        prepared.train_images,
        settings,
        augment,
        checkpoint,
        device(),
        on_epoch=epoch_logger(logger, "selflabel", settings.epochs,
                              describe_epoch),
        probe=probe,
        processes=processes(),
        neighbors=training_neighbors(prepared) if settings.neighbor_consensus > 0 else None,
    )
    summary: dict = {"settings": resolved, "history": history}
    if not history and settings.epochs > 0:
        summary["warning"] = (
            f"no image was predicted with confidence above selflabel.threshold = {settings.threshold}; "
            f"self-labeling was skipped and the clustering model is kept. Lower selflabel.threshold "
            f"or train the scan stage longer."
        )
        logger.warning(summary["warning"])
    save_model(out(SELFLABEL_MODEL_FILE), model.cpu(), **description)
    write_predictions(out(SELFLABEL_PREDICTIONS_FILE), model, prepared, augment)
    out(SELFLABEL_DIR / SUMMARY_NAME).write_text(json.dumps(summary, indent=1))
    # [{epoch, loss, confident, confident_balance[, trusted][, acc, pseudo_label_accuracy, pseudo_label_purity]}]
    out(SELFLABEL_CURVES_FILE).write_text(json.dumps(history, indent=1))
    checkpoint.discard()
    confident = [record["confident"] for record in history]
    publish_key_numbers("selflabel", {
        "training images": len(prepared.train_rows), "threshold": settings.threshold,
        "epochs run": len(history), "confident after first epoch": confident[0] if confident else None,
        "confident after last epoch": confident[-1] if confident else None,
        "most confident": max(confident, default=None),
        "final loss": history[-1]["loss"] if history else None})
