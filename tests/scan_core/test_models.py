"""Backbones, the projection head and the multi-head clustering model."""

from __future__ import annotations

import pytest
import torch

from scan_core.models import BACKBONES, ClusteringModel, ContrastiveModel, build_backbone


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", BACKBONES)
def test_backbone_maps_images_to_feature_vectors(name: str, channels: int) -> None:
    torch.manual_seed(0)
    backbone = build_backbone(name, channels).eval()
    assert isinstance(backbone.output_dim, int) and backbone.output_dim > 0
    with torch.no_grad():
        features = backbone(torch.rand(2, channels, 32, 32))
    assert features.shape == (2, backbone.output_dim)
    assert torch.isfinite(features).all()


@pytest.mark.parametrize("channels", [1, 3])
def test_small_cnn_handles_tiny_images(channels: int) -> None:
    backbone = build_backbone("small_cnn", channels).eval()
    with torch.no_grad():
        assert backbone(torch.rand(3, channels, 8, 8)).shape == (3, backbone.output_dim)


def test_expected_feature_sizes() -> None:
    assert build_backbone("small_cnn", 1).output_dim == 128
    assert build_backbone("resnet18_cifar", 3).output_dim == 512
    assert build_backbone("resnet18", 3).output_dim == 512


def test_unknown_backbone_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown backbone 'vgg'"):
        build_backbone("vgg", 3)


def test_contrastive_model_projects_to_projection_dim() -> None:
    model = ContrastiveModel(build_backbone("small_cnn", 3), projection_dim=16).eval()
    with torch.no_grad():
        assert model(torch.rand(4, 3, 8, 8)).shape == (4, 16)


def test_clustering_model_returns_logits_per_head_and_keep_head() -> None:
    torch.manual_seed(0)
    model = ClusteringModel(build_backbone("small_cnn", 1), num_clusters=5, num_heads=3).eval()
    images = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        logits = model(images)
    assert logits.shape == (3, 4, 5)
    assert not torch.allclose(logits[0], logits[1])  # heads are independent
    model.keep_head(1)
    assert len(model.heads) == 1
    with torch.no_grad():
        kept = model(images)
    assert kept.shape == (1, 4, 5)
    torch.testing.assert_close(kept[0], logits[1])
    assert set(model.state_dict()) == {key for key in model.state_dict() if not key.startswith("heads.1")}
    assert "heads.0.weight" in model.state_dict()
