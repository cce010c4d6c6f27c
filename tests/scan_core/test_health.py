"""Label-free health: numbers a user without labels can read, checked against hand counts."""

from __future__ import annotations

import numpy as np
import pytest

from scan_core.health import cluster_balance, health_warning, label_free_health, neighbor_agreement


def test_neighbor_agreement_counts_pairs_in_the_same_cluster() -> None:
    clusters = np.array([0, 0, 1, 1])
    neighbors = np.array([[1, 2], [0, 3], [3, 0], [2, 1]])
    # pairs kept together: (0,1) (1,0) (2,3) (3,2) of 8
    assert neighbor_agreement(clusters, neighbors) == pytest.approx(4 / 8)


def test_cluster_balance_is_one_for_equal_sizes_and_zero_for_one_cluster() -> None:
    assert cluster_balance(np.array([0, 1, 2, 0, 1, 2]), 3) == pytest.approx(1.0)
    assert cluster_balance(np.array([1, 1, 1, 1]), 3) == pytest.approx(0.0)
    sizes = np.array([3, 1]) / 4
    assert cluster_balance(np.array([0, 0, 0, 1]), 2) == pytest.approx(-(sizes * np.log(sizes)).sum() / np.log(2))


def test_label_free_health_adds_confidence_only_when_given() -> None:
    clusters, neighbors = np.array([0, 1]), np.array([[1], [0]])
    assert set(label_free_health(clusters, 2, neighbors)) == {"neighbor_agreement", "size_balance"}
    health = label_free_health(clusters, 2, neighbors, confidence=np.array([0.995, 0.5]))
    assert health["mean_confidence"] == pytest.approx(0.7475)
    assert health["confident_share"] == pytest.approx(0.5)


def test_warning_only_when_scan_splits_more_neighbor_pairs_than_kmeans() -> None:
    better = {"kmeans": {"neighbor_agreement": 0.80}, "scan": {"neighbor_agreement": 0.90}}
    worse = {"kmeans": {"neighbor_agreement": 0.80}, "scan": {"neighbor_agreement": 0.70}}
    assert health_warning(better) is None
    message = health_warning(worse)
    assert "70.0%" in message and "80.0%" in message and "scan.num_neighbors" in message
