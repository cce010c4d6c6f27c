"""``ScanSettings.init`` is what ``train_scan`` does: ``kmeans`` starts the heads from k-means
partitions (its own of the backbone's features when none are given), ``spectral`` from spectral
clusterings of the neighbor graph, ``random`` does not."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import nn

from scan_core.augment.settings import AugmentSettings
from scan_core.checkpoint import TrainingCheckpoint
from scan_core.training.clustering import ScanSettings, heads_probabilities, train_scan
from scan_core.training.warm_start import kmeans_partitions

CPU = torch.device("cpu")
PIXELS_AS_IS = AugmentSettings(mean=(0.0,), std=(1.0,))


def _features(per_blob: int = 50) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 16, generator=generator) * 4
    return torch.cat([centre + torch.randn(per_blob, 16, generator=generator) for centre in centres])


def _identity() -> nn.Module:
    backbone = nn.Identity()
    backbone.output_dim = 16
    return backbone


def _agreement(first: np.ndarray, second: np.ndarray) -> float:
    """The fraction of points two partitions agree on, under the best matching of their clusters."""
    counts = np.zeros((4, 4))
    np.add.at(counts, (first, second), 1)
    rows, columns = linear_sum_assignment(-counts)
    return counts[rows, columns].sum() / len(first)


def _heads_after_an_untrained_epoch(init: str, features: torch.Tensor, **given) -> np.ndarray:
    """Predictions of the kept head after one epoch at a learning rate too small to move it."""
    settings = ScanSettings(num_clusters=4, num_heads=2, num_neighbors=3, epochs=1, batch_size=64, lr=1e-12,
                            update_backbone=False, augmentation="none", init=init, seed=0)
    neighbors = torch.randint(0, len(features), (len(features), 3), generator=torch.Generator().manual_seed(1))
    model, _, _ = train_scan(_identity(), None, neighbors, settings, PIXELS_AS_IS, TrainingCheckpoint(None, "x"), CPU,
                             progress=False, features=features, **given)
    return heads_probabilities(model, features, CPU)[0].argmax(dim=1).numpy()


def test_init_kmeans_without_partitions_starts_from_kmeans_of_the_backbone_features() -> None:
    features = _features()
    expected = kmeans_partitions(F.normalize(features, dim=1).numpy(), 4, 2, 0)
    predicted = _heads_after_an_untrained_epoch("kmeans", features)
    assert max(_agreement(predicted, partition.numpy()) for partition in expected) >= 0.95


def test_init_random_starts_at_random() -> None:
    features = _features()
    expected = kmeans_partitions(F.normalize(features, dim=1).numpy(), 4, 1, 0)[0].numpy()
    assert _agreement(_heads_after_an_untrained_epoch("random", features), expected) < 0.8


def test_partitions_given_with_init_random_are_refused() -> None:
    features = _features()
    with pytest.raises(ValueError, match="init 'random'"):
        _heads_after_an_untrained_epoch("random", features, initial_clusters=torch.zeros((2, 200), dtype=torch.long))


def test_init_spectral_starts_from_the_neighbor_graphs_unequal_communities() -> None:
    generator = torch.Generator().manual_seed(0)
    sizes = (20, 60, 150)
    centres = torch.randn(3, 16, generator=generator) * 4
    features = torch.cat([centre + torch.randn(size, 16, generator=generator) for centre, size in zip(centres, sizes)])
    groups = np.repeat(np.arange(3), sizes)
    distances = torch.cdist(features, features).fill_diagonal_(float("inf"))
    neighbors = distances.argsort(dim=1)[:, :3]
    settings = ScanSettings(num_clusters=3, num_heads=2, num_neighbors=3, epochs=1, batch_size=64, lr=1e-12,
                            update_backbone=False, augmentation="none", init="spectral", seed=0)
    model, _, _ = train_scan(_identity(), None, neighbors, settings, PIXELS_AS_IS, TrainingCheckpoint(None, "x"), CPU,
                             progress=False, features=features)
    predicted = heads_probabilities(model, features, CPU)[0].argmax(dim=1).numpy()
    assert sorted(np.bincount(predicted, minlength=3).tolist()) == [20, 60, 150]
    assert all(len(set(predicted[groups == group])) == 1 for group in range(3))


def test_init_spectral_without_neighbors_is_refused() -> None:
    settings = ScanSettings(num_clusters=4, num_heads=1, num_neighbors=0, epochs=1, update_backbone=False,
                            augmentation="none", init="spectral")
    with pytest.raises(ValueError, match="init 'spectral'.*num_neighbors"):
        train_scan(_identity(), None, torch.zeros((200, 1), dtype=torch.long), settings, PIXELS_AS_IS,
                   TrainingCheckpoint(None, "x"), CPU, progress=False, features=_features())
