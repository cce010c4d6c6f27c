"""Warm start: each head starts from its own k-means partition of the embeddings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scan_core.augment.settings import AugmentSettings
from scan_core.models import ClusteringModel, build_backbone
from scan_core.training.common import compute_features
from scan_core.training.warm_start import kmeans_partitions, warm_start_heads

CPU = torch.device("cpu")


def _blobs(count_per_blob: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, 16)) * 5
    return np.concatenate([centre + rng.normal(size=(count_per_blob, 16)) for centre in centres])


def test_kmeans_partitions_give_one_reproducible_partition_per_head() -> None:
    embeddings = _blobs()
    partitions = kmeans_partitions(embeddings, num_clusters=3, count=5, seed=7)
    assert partitions.shape == (5, len(embeddings)) and partitions.dtype == torch.long
    assert set(partitions.unique().tolist()) == {0, 1, 2}
    assert torch.equal(partitions, kmeans_partitions(embeddings, num_clusters=3, count=5, seed=7))
    # four blobs into three clusters: different starts merge different blobs
    assert len({tuple(partition.tolist()) for partition in partitions}) > 1


def test_each_head_learns_its_own_partition() -> None:
    torch.manual_seed(0)
    patterns = torch.randint(0, 256, (4, 8, 8, 1))
    noise = torch.randint(-12, 13, (120, 8, 8, 1))
    images = (patterns.repeat(30, 1, 1, 1) + noise).clamp(0, 255).to(torch.uint8)
    augment = AugmentSettings(mean=(0.5,), std=(0.25,), hflip=False)
    model = ClusteringModel(build_backbone("small_cnn", 1), num_clusters=4, num_heads=2)
    features = compute_features(model.backbone, images, augment, 64, CPU).numpy()
    partitions = kmeans_partitions(features, num_clusters=4, count=2, seed=0)
    backbone_before = [parameter.clone() for parameter in model.backbone.parameters()]

    warm_start_heads(model, images, augment, CPU, partitions)

    with torch.no_grad():
        for head, partition in zip(model.heads, partitions):
            predicted = head(torch.from_numpy(features)).argmax(dim=1)
            assert (predicted == partition).float().mean() >= 0.95
    assert all(torch.equal(before, after) for before, after in zip(backbone_before, model.backbone.parameters()))


def test_a_partition_per_head_is_required() -> None:
    images = torch.zeros((10, 8, 8, 1), dtype=torch.uint8)
    model = ClusteringModel(build_backbone("small_cnn", 1), num_clusters=3, num_heads=2)
    with pytest.raises(ValueError, match=r"expected \(heads=2, images=10\)"):
        warm_start_heads(model, images, AugmentSettings(mean=(0.5,), std=(0.25,)), CPU,
                         torch.zeros((1, 10), dtype=torch.long))
