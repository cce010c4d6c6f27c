"""Saving and loading trained models as plain state dicts (safe to load with weights_only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from scan_core.checkpoint import load_checkpoint, save_checkpoint
from scan_core.models import ClusteringModel, ContrastiveModel, build_backbone


def save_model(path: Path | str, model: nn.Module, **description: Any) -> None:
    """Write weights plus what is needed to rebuild the network (backbone name, sizes...)."""
    save_checkpoint(path, {"model": model.state_dict(), **description})


def _description(state: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in state.items() if key != "model"}


def load_contrastive_model(path: Path | str) -> tuple[ContrastiveModel, dict[str, Any]]:
    """The pretext network (backbone + projection head) and its description."""
    state = load_checkpoint(path)
    model = ContrastiveModel(build_backbone(state["backbone"], state["in_channels"]), state["projection_dim"])
    model.load_state_dict(state["model"])
    return model, _description(state)


def load_clustering_model(path: Path | str) -> tuple[ClusteringModel, dict[str, Any]]:
    """The one-head classifier of the scan or selflabel stage and its description."""
    state = load_checkpoint(path)
    model = ClusteringModel(build_backbone(state["backbone"], state["in_channels"]), state["num_clusters"], 1,
                            state.get("head", "linear"))
    model.load_state_dict(state["model"])
    return model, _description(state)
