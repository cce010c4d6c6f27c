"""scan: cluster the training images with the SCAN loss, starting from the pretext backbone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from prefect import get_run_logger

from scan_core.checkpoint import TrainingCheckpoint, atomic_path, atomic_write_text
from scan_core.cluster_count import CRITERION, estimate_num_clusters
from scan_core.defaults import AUTO, auto_cluster_counts, describe_auto, resolve_stage
from scan_core.mining import neighbor_matrix
from scan_core.model_files import load_contrastive_model, save_model
from scan_core.predictions import predictions_table
from scan_core.augment import AugmentSettings
from scan_core.training.clustering import ScanSettings, collapse_report, collapse_warning, train_scan
from scan_core.training.warm_start import kmeans_partitions
from scan_core.training.common import predict_probabilities
from tasks.common import stage_key, stage_task
from tasks.progress import epoch_logger
from tasks.embed import EMBEDDINGS_FILE
from tasks.mine import NEIGHBORS_FILE
from tasks.prepared import Prepared, augment_settings, checkpoint_file, device, load_prepared
from tasks.pretext import MODEL_FILE as PRETEXT_MODEL_FILE
from tasks.stages import group

SCAN_DIR = Path("artifacts/scan")
MODEL_FILE = SCAN_DIR / "model.pt"
PREDICTIONS_FILE = SCAN_DIR / "predictions.parquet"


def training_neighbors(prepared: Prepared, num_neighbors: int | None = None) -> torch.Tensor:
    """Neighbors as positions among the training rows (what the training loop indexes);
    all mined neighbors when ``num_neighbors`` is None."""
    table = pd.read_parquet(NEIGHBORS_FILE)
    anchors, neighbors = neighbor_matrix(table, num_neighbors or int(table["rank"].max()))
    position = np.full(len(prepared.manifest), -1)
    position[prepared.train_rows] = np.arange(len(prepared.train_rows))
    ordered = np.empty_like(neighbors)
    ordered[position[anchors]] = position[neighbors]
    return torch.from_numpy(ordered)


def write_predictions(
    path: Path, model: torch.nn.Module, prepared: Prepared, augment: AugmentSettings
) -> np.ndarray:
    """Predict every image (train and eval rows) and write the predictions table."""
    probabilities = predict_probabilities(model.to(device()), prepared.images, augment, 512, device())[0].numpy()
    table = predictions_table(prepared.manifest["index"].to_numpy(), prepared.manifest["source"].tolist(),
                              probabilities)
    with atomic_path(path) as temporary:
        table.to_parquet(temporary, index=False)
    return probabilities


@stage_task("scan")
def scan(params: dict, inputs: dict) -> None:
    logger = get_run_logger()
    prepared = load_prepared()
    values = group(params, "scan")
    resolved = resolve_stage("scan", values, len(prepared.train_rows))
    embeddings = np.load(EMBEDDINGS_FILE)[prepared.train_rows]
    estimate = None
    if values["num_clusters"] == AUTO:
        estimate = estimate_num_clusters(embeddings, training_neighbors(prepared).numpy(),
                                         auto_cluster_counts(len(prepared.train_rows)), values["seed"])
        resolved["num_clusters"] = estimate.chosen
        logger.info("scan.num_clusters auto: %d clusters, the fewest within %.0f%% of the best %s (%s)",
                    estimate.chosen, 100 * estimate.tolerance, CRITERION,
                    ", ".join(f"{count}: {value:.3f}" for count, value in estimate.curve.items()))
    logger.info(describe_auto("scan", values, resolved))
    settings = ScanSettings(**resolved)
    train_images = prepared.images[prepared.train_rows]
    augment = augment_settings(prepared.info, group(params, "augment"))
    checkpoint = TrainingCheckpoint(checkpoint_file("scan"), stage_key("scan", params, inputs))
    pretext_model, pretext_description = load_contrastive_model(PRETEXT_MODEL_FILE)
    initial_clusters = None
    if settings.init == "kmeans":
        initial_clusters = kmeans_partitions(embeddings, settings.num_clusters, settings.num_heads, settings.seed)
    model, history, selection = train_scan(
        pretext_model.backbone,
        train_images,
        training_neighbors(prepared, settings.num_neighbors) if settings.num_neighbors
        else torch.arange(len(prepared.train_rows))[:, None],  # K = 0: each image is its own neighbor
        settings,
        augment,
        checkpoint,
        device(),
        on_epoch=epoch_logger(logger, "scan", settings.epochs, lambda record: (
            f"loss {record['loss']:.4f} (consistency {record['consistency']:.4f}, entropy {record['entropy']:.4f}); "
            f"best head {record['head']}: selection loss {record['selection_loss']:.4f}, neighbor agreement "
            f"{record['neighbor_agreement']:.3f}, mean confidence {record['mean_confidence']:.3f}, "
            f"balance {record['balance']:.3f}")),
        initial_clusters=initial_clusters,
    )
    logger.info("kept head %d of %d from epoch %d (lowest SCAN loss with entropy weight 1: %.4f)",
                selection["head"], selection["heads"], selection["epoch"], selection["criterion"])
    save_model(MODEL_FILE, model.cpu(), backbone=pretext_description["backbone"],
               in_channels=prepared.info["channels"], num_clusters=settings.num_clusters,
               image_size=prepared.info["image_size"], mean=augment.mean, std=augment.std)
    probabilities = write_predictions(PREDICTIONS_FILE, model, prepared, augment)
    report = collapse_report(torch.from_numpy(probabilities[prepared.train_rows]))
    summary = {"settings": resolved, "selection": selection, **report, "history": history}
    if estimate is not None:
        summary["num_clusters_estimate"] = estimate.as_dict()
    if (warning := collapse_warning(report, settings.num_clusters)) is not None:
        logger.warning(warning)
        summary["warning"] = warning
    atomic_write_text(SCAN_DIR / "summary.json", json.dumps(summary, indent=1))
    checkpoint.discard()
