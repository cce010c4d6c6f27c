"""scan: cluster the training images with the SCAN loss, starting from the pretext backbone."""

from __future__ import annotations

import json

import torch
from prefect import get_run_logger

from scan_core.checkpoint import TrainingCheckpoint
from scan_core.cluster_count import CRITERION, estimate_num_clusters
from scan_core.defaults import AUTO, auto_batch_size, auto_cluster_counts, describe_auto, resolve_stage
from scan_core.model_files import load_contrastive_model, save_model
from scan_core.names import is_foundation
from scan_core.training.clustering import (CACHED_FEATURES, SELECTION_DESCRIPTIONS, ScanSettings, collapse_report,
                                          collapse_warning, train_scan)
from scan_core.training.multiprocess import describe
from scan_core.training.warm_start import kmeans_partitions, spectral_partitions
from tasks.artifacts import publish_key_numbers
from tasks.common import StagedOutputs, stage_key, stage_task
from tasks.compute import augment_settings, checkpoint_file
from tasks.device import device, processes
from tasks.neighbors import training_neighbors
from tasks.paths import (EMBEDDINGS_FILE, PRETEXT_MODEL_FILE, SCAN_CURVES_FILE, SCAN_DIR, SCAN_MODEL_FILE,
                         SCAN_PREDICTIONS_FILE, SUMMARY_NAME)
from tasks.prepared import load_prepared, load_rows
from tasks.progress import epoch_logger
from tasks.stage_predictions import write_predictions
from tasks.stages import group


@stage_task("scan")
def scan(params: dict, inputs: dict, out: StagedOutputs) -> None:
    logger = get_run_logger()
    prepared = load_prepared()
    values = group(params, "scan")
    pretext_model, pretext_description = load_contrastive_model(PRETEXT_MODEL_FILE)
    backbone_name = pretext_description["backbone"]
    recipe = prepared.recipe
    if is_foundation(backbone_name):
        recipe = recipe.over_foundation_backbone(backbone_name)
    # auto keys: the recipe prepare recorded (epochs; over a foundation backbone, cached-feature
    # heads) and the image count (batch size, clusters).
    resolved = resolve_stage("scan", values, len(prepared.train_rows), recipe)
    if is_foundation(backbone_name) and values["batch_size"] == AUTO:
        resolved["batch_size"] = auto_batch_size("scan_heads", len(prepared.train_rows))
    embeddings = load_rows(EMBEDDINGS_FILE, prepared)[prepared.train_rows]
    estimate = None
    if values["num_clusters"] == AUTO:
        estimate = estimate_num_clusters(embeddings, training_neighbors(prepared).numpy(),
                                         auto_cluster_counts(len(prepared.train_rows)), values["seed"])
        resolved["num_clusters"] = estimate.chosen
        logger.info("scan.num_clusters auto: %d clusters, the fewest within %.0f%% of the best %s (%s)",
                    estimate.chosen, 100 * estimate.tolerance, CRITERION,
                    ", ".join(f"{count}: {value:.3f}" for count, value in estimate.curve.items()))
    logger.info(describe_auto("scan", values, resolved, recipe))
    logger.info(describe("scan", processes(), device()))
    settings = ScanSettings(**resolved)
    train_images = prepared.train_images
    augment = augment_settings("scan", prepared.info, group(params, "augment"), logger, backbone_name)
    checkpoint = TrainingCheckpoint(checkpoint_file("scan"), stage_key("scan", params, inputs))
    neighbors = training_neighbors(prepared, settings.num_neighbors)
    initial_clusters = None
    if settings.init == "kmeans":
        initial_clusters = kmeans_partitions(embeddings, settings.num_clusters, settings.num_heads, settings.seed)
    elif settings.init == "spectral":
        initial_clusters = spectral_partitions(neighbors.numpy(), settings.num_clusters, settings.num_heads,
                                               settings.seed)
        sizes = torch.bincount(initial_clusters[0], minlength=settings.num_clusters)
        logger.info("scan.init spectral: the first head starts from clusters of %s images (sorted)",
                    ", ".join(map(str, sorted(sizes.tolist()))))
    model, history, selection = train_scan(
        pretext_model.backbone,
        train_images,
        neighbors,
        settings,
        augment,
        checkpoint,
        device(),
        on_epoch=epoch_logger(logger, "scan", settings.epochs, lambda record: (
            f"loss {record['loss']:.4f} (consistency {record['consistency']:.4f}, entropy {record['entropy']:.4f}); "
            f"best head {record['head']} (entropy weight {record['head_entropy_weight']:g}): modularity "
            f"{record['modularity']:.4f}, selection loss {record['selection_loss']:.4f}, neighbor agreement "
            f"{record['neighbor_agreement']:.3f}, mean confidence {record['mean_confidence']:.3f}, "
            f"size balance {record['size_balance']:.3f}")),
        initial_clusters=initial_clusters,
        processes=processes(),
    )
    logger.info("kept head %d of %d (entropy weight %g) from epoch %d: the best %s, %.4f",
                selection["head"], selection["heads"], selection["entropy_weight"], selection["epoch"],
                SELECTION_DESCRIPTIONS[selection["criterion"]], selection["score"])
    if "cluster_sizes_asked" in selection:
        logger.info("scan.cluster_sizes %s: asked for cluster shares %s (sorted)", values["cluster_sizes"],
                    ", ".join(f"{share:.3f}" for share in selection["cluster_sizes_asked"]))
    save_model(out(SCAN_MODEL_FILE), model.cpu(), backbone=backbone_name, in_channels=prepared.info["channels"],
               num_clusters=settings.num_clusters, head=settings.head, image_size=prepared.info["image_size"],
               mean=augment.mean, std=augment.std, heads_on_features=settings.augmentation == CACHED_FEATURES,
               **{key: pretext_description[key] for key in ("preprocessing",) if key in pretext_description})
    probabilities = write_predictions(out(SCAN_PREDICTIONS_FILE), model, prepared, augment)
    report = collapse_report(torch.from_numpy(probabilities[prepared.train_rows]))
    summary = {"settings": resolved, "selection": selection, **report, "history": history}
    if estimate is not None:
        summary["num_clusters_estimate"] = estimate.as_dict()
    if (warning := collapse_warning(report, settings.num_clusters)) is not None:
        logger.warning(warning)
        summary["warning"] = warning
    out(SCAN_DIR / SUMMARY_NAME).write_text(json.dumps(summary, indent=1))
    # [{epoch, loss, consistency, entropy, selection_loss, head, neighbor_agreement, ...}] for dvc plots
    out(SCAN_CURVES_FILE).write_text(json.dumps(history, indent=1))
    checkpoint.discard()
    kept = next((record for record in history if record["epoch"] == selection["epoch"]), {})
    publish_key_numbers("scan", {
        "clusters": settings.num_clusters, "kept head": selection["head"], "heads": selection["heads"],
        "kept epoch": selection["epoch"], "kept head's entropy weight": selection["entropy_weight"],
        f"{selection['criterion']} (kept)": selection["score"],
        "neighbor agreement (kept epoch)": kept.get("neighbor_agreement"),
        "final loss": history[-1]["loss"] if history else None,
        "non-empty clusters": report["nonempty_clusters"], "prediction balance": report["prediction_balance"]})
