"""Trained models saved as plain state dicts and rebuilt from their description."""

from __future__ import annotations

from pathlib import Path

import torch

from scan_core.checkpoint import load_checkpoint
from scan_core.model_files import load_clustering_model, load_contrastive_model, save_model
from scan_core.models import ClusteringModel, ContrastiveModel, build_backbone


def test_contrastive_model_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = ContrastiveModel(build_backbone("small_cnn", 3), projection_dim=8).eval()
    save_model(tmp_path / "pretext.pt", model, backbone="small_cnn", in_channels=3, projection_dim=8)
    loaded, description = load_contrastive_model(tmp_path / "pretext.pt")
    assert description == {"backbone": "small_cnn", "in_channels": 3, "projection_dim": 8}
    images = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(images), model(images))


def test_clustering_model_round_trip_after_head_selection(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = ClusteringModel(build_backbone("small_cnn", 1), num_clusters=4, num_heads=3).eval()
    model.keep_head(2)
    save_model(tmp_path / "scan.pt", model, backbone="small_cnn", in_channels=1, num_clusters=4)
    loaded, description = load_clustering_model(tmp_path / "scan.pt")
    assert description["num_clusters"] == 4
    images = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(images), model(images))
    # The file holds only tensors and plain values: it loads with weights_only.
    assert set(load_checkpoint(tmp_path / "scan.pt")) == {"model", "backbone", "in_channels", "num_clusters"}
