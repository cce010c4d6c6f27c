"""Label-free health: numbers a user without labels can read, checked against hand counts."""

from __future__ import annotations

import numpy as np
import pytest

from scan_core.health import (HEALTH_MARGIN, cluster_balance, health_warning, label_free_health, neighbor_agreement,
                              neighbor_modularity)


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
    assert set(label_free_health(clusters, 2, neighbors)) == {"neighbor_agreement", "modularity", "size_balance"}
    health = label_free_health(clusters, 2, neighbors, confidence=np.array([0.995, 0.5]))
    assert health["mean_confidence"] == pytest.approx(0.7475)
    assert health["confident_share"] == pytest.approx(0.5)


def test_modularity_is_pairs_kept_minus_their_chance_for_these_sizes() -> None:
    clusters = np.array([0, 0, 1, 1])
    neighbors = np.array([[1], [0], [3], [0]])  # 3 of 4 pairs kept; out-shares 1/2, 1/2; in-shares 3/4, 1/4
    assert neighbor_modularity(clusters, neighbors) == pytest.approx(3 / 4 - (1 / 2 * 3 / 4 + 1 / 2 * 1 / 4))
    assert neighbor_modularity(np.zeros(4, dtype=int), neighbors) == pytest.approx(0.0)


def test_modularity_does_not_ask_for_equal_sizes() -> None:
    """Two groups of 6 and 2 whose neighbors stay inside: keeping them is worth more than any
    equal split, which cuts the large group."""
    neighbors = np.array([[1], [2], [3], [4], [5], [0], [7], [6]])
    true_groups = np.array([0, 0, 0, 0, 0, 0, 1, 1])
    equal_split = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    assert neighbor_modularity(true_groups, neighbors) > neighbor_modularity(equal_split, neighbors)


def _health(kmeans: float, scan: float, selflabel: float | None = None) -> dict:
    health = {"kmeans": {"modularity": kmeans}, "scan": {"modularity": scan}}
    if selflabel is not None:
        health["selflabel"] = {"modularity": selflabel}
    return health


def test_warning_only_beyond_the_margin_below_kmeans() -> None:
    assert health_warning(_health(0.80, 0.90)) is None
    assert health_warning(_health(0.80, 0.80 - HEALTH_MARGIN + 0.001)) is None  # within the noise of two good runs
    message = health_warning(_health(0.80, 0.70))
    assert "scan 0.700" in message and "0.800" in message and "scan.lr" in message


def test_warning_names_self_labeling_when_it_alone_lost_structure() -> None:
    message = health_warning(_health(0.80, 0.81, selflabel=0.60))
    assert "selflabel 0.600" in message and "scan 0.810" not in message
