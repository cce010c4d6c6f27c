"""Warm start: each head starts from its own k-means partition of the embeddings, or its own
spectral clustering of the neighbor graph."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scan_core.augment.settings import AugmentSettings
from scan_core.models import ClusteringModel, build_backbone
from scan_core.training.common import compute_features
from scan_core.training.warm_start import kmeans_partitions, spectral_partitions, warm_start_heads

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


def _unequal_blobs(sizes: tuple[int, ...] = (10, 30, 80), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(sizes), 16)) * 6
    points = np.concatenate([centre + rng.normal(size=(size, 16)) for centre, size in zip(centres, sizes)])
    return points, np.repeat(np.arange(len(sizes)), sizes)


def _nearest(points: np.ndarray, count: int) -> np.ndarray:
    distances = ((points[:, None] - points[None]) ** 2).sum(-1)
    np.fill_diagonal(distances, np.inf)
    return np.argsort(distances, axis=1)[:, :count]


def test_spectral_partitions_keep_unequal_communities_that_kmeans_cuts_equal() -> None:
    points, groups = _unequal_blobs()
    partitions = spectral_partitions(_nearest(points, 5), num_clusters=3, count=4, seed=0)
    assert partitions.shape == (4, len(points)) and partitions.dtype == torch.long
    for partition in partitions.numpy():
        # each cluster is exactly one group: sizes 10, 30 and 80, not three near-equal cells
        assert sorted(np.bincount(partition).tolist()) == [10, 30, 80]
        assert all(len(set(partition[groups == group])) == 1 for group in range(3))
    assert torch.equal(partitions, spectral_partitions(_nearest(points, 5), 3, 4, 0))


def test_spectral_partitions_on_a_large_graph_are_reproducible() -> None:
    points, groups = _unequal_blobs((50, 150, 300))  # past the dense eigensolver's size
    neighbors = _nearest(points, 5)
    first = spectral_partitions(neighbors, 3, 1, 0)[0].numpy()
    assert sorted(np.bincount(first).tolist()) == [50, 150, 300]
    assert np.array_equal(first, spectral_partitions(neighbors, 3, 1, 0)[0].numpy())


def test_spectral_partitions_refuse_as_many_clusters_as_images() -> None:
    with pytest.raises(ValueError, match="fewer clusters than images: 6 clusters for 6 images"):
        spectral_partitions(np.array([[1], [0], [3], [2], [5], [4]]), 6, 1, 0)


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
