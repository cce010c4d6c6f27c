"""pretext: train the backbone with SimCLR on the training images."""

from __future__ import annotations

import json
from pathlib import Path

from prefect import get_run_logger
from torch import nn

from scan_core.checkpoint import TrainingCheckpoint
from scan_core.defaults import AUTO, describe_auto, resolve_stage
from scan_core.foundation import check_name, load_foundation
from scan_core.model_files import save_model
from scan_core.models import ContrastiveModel
from scan_core.names import is_foundation
from scan_core.pretrained import pretrained_backbone
from scan_core.training.multiprocess import describe
from scan_core.training.pretext import PretextSettings, train_pretext
from tasks.artifacts import publish_key_numbers
from tasks.common import StagedOutputs, stage_key, stage_task
from tasks.compute import augment_settings, checkpoint_file
from tasks.device import device, processes
from tasks.paths import PRETEXT_CURVES_FILE, PRETEXT_DIR, PRETEXT_MODEL_FILE
from tasks.prepared import load_prepared
from tasks.progress import epoch_logger
from tasks.stages import group


def _pretrained_backbone(values: dict, prepared, logger) -> tuple[nn.Module, dict]:
    """The backbone with weights trained elsewhere, and what its model file records beyond the
    architecture: a foundation model's preprocessing, said in the log as well."""
    name, weights = values["backbone"], values["weights"]
    if not is_foundation(name):
        return pretrained_backbone(name, prepared.info["channels"], weights), {}
    check_name(name)
    backbone = load_foundation(name, Path(weights) if weights else None)
    stored, wanted = prepared.info["image_size"], backbone.preprocessing.input_size
    logger.info("pretext: %s preprocessing: %s", name, backbone.preprocessing.describe(stored))
    if stored < wanted:
        logger.warning("images are stored at %d px, below the %d px %s was trained at: they are upsampled, and "
                       "detail the originals had is lost; set data.image_size: %d", stored, wanted, name, wanted)
    return backbone, {"preprocessing": backbone.preprocessing.as_dict()}


def _save_pretrained(values: dict, prepared, out: StagedOutputs, logger) -> None:
    """pretext.method: pretrained: the backbone with weights trained elsewhere, no training and
    no projection head, written in the format a SimCLR run writes (embed to selflabel read it)."""
    backbone, extra = _pretrained_backbone(values, prepared, logger)
    logger.info("pretext: %s with pretrained weights %s, %d-d features, no SimCLR training", values["backbone"],
                values["weights"] or "from the Hugging Face cache", backbone.output_dim)
    save_model(out(PRETEXT_MODEL_FILE), ContrastiveModel(backbone, projection_dim=None), backbone=values["backbone"],
               in_channels=prepared.info["channels"], projection_dim=None, **extra)
    chosen = {key: values[key] for key in ("method", "weights", "backbone")} | extra
    for path in (PRETEXT_DIR / "history.json", PRETEXT_CURVES_FILE):
        out(path).write_text("[]")
    out(PRETEXT_DIR / "settings.json").write_text(json.dumps(chosen, indent=1))
    publish_key_numbers("pretext", {**{key: values[key] for key in ("method", "weights", "backbone")},
                                    "feature dims": backbone.output_dim, **extra.get("preprocessing", {})})


@stage_task("pretext")
def pretext(params: dict, inputs: dict, out: StagedOutputs) -> None:
    logger = get_run_logger()
    prepared = load_prepared()
    values = group(params, "pretext")
    # auto keys: the recipe prepare recorded (backbone, epochs) and the image count (batch size).
    resolved = resolve_stage("pretext", values, len(prepared.train_rows), prepared.recipe)
    if values["method"] == "pretrained":
        if values["backbone"] == AUTO:  # the weights must fit it: name their architecture to be sure
            logger.info("pretext.backbone auto: %s (recipe %s)", resolved["backbone"], prepared.recipe.name)
        return _save_pretrained(resolved, prepared, out, logger)
    logger.info(describe_auto("pretext", values, resolved, prepared.recipe))
    logger.info(describe("pretext", processes(), device()))
    settings = PretextSettings(**{key: value for key, value in resolved.items() if key not in ("method", "weights")})
    checkpoint = TrainingCheckpoint(checkpoint_file("pretext"), stage_key("pretext", params, inputs))
    model, history = train_pretext(
        prepared.train_images,
        settings,
        augment_settings("pretext", prepared.info, group(params, "augment"), logger),
        checkpoint,
        device(),
        on_epoch=epoch_logger(logger, "pretext", settings.epochs, lambda record: f"loss {record['loss']:.4f}"),
        processes=processes(),
    )
    save_model(out(PRETEXT_MODEL_FILE), model.cpu(), backbone=settings.backbone, in_channels=prepared.info["channels"],
               projection_dim=settings.projection_dim)
    out(PRETEXT_DIR / "history.json").write_text(json.dumps(history, indent=1))
    out(PRETEXT_CURVES_FILE).write_text(json.dumps(history, indent=1))  # [{epoch, loss}]
    out(PRETEXT_DIR / "settings.json").write_text(json.dumps(resolved, indent=1))
    checkpoint.discard()
    publish_key_numbers("pretext", {"final loss": history[-1]["loss"] if history else None,
                                    "epochs": settings.epochs, "backbone": settings.backbone,
                                    "training images": len(prepared.train_rows)})
