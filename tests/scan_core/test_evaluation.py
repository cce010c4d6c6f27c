"""Clustering metrics: matching clusters to classes, NMI/ARI, top-5, confusion matrix."""

from __future__ import annotations

import numpy as np
import pytest

from scan_core.evaluation import (
    cluster_metrics,
    cluster_summary,
    confusion_matrix,
    kmeans_clusters,
    match_clusters,
)


def test_permuted_labelling_scores_perfectly() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, size=200)
    permutation = np.array([3, 0, 4, 1, 2])
    predictions = permutation[labels]
    metrics = cluster_metrics(labels, predictions)
    assert metrics["acc"] == 1.0
    assert metrics["nmi"] == pytest.approx(1.0)
    assert metrics["ari"] == pytest.approx(1.0)
    assert "top5" not in metrics
    np.testing.assert_array_equal(match_clusters(labels, predictions)[permutation], np.arange(5))


def test_partial_agreement_acc_by_hand() -> None:
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
    predictions = np.array([1, 1, 0, 2, 2, 2, 0, 0, 1])
    # counts[cluster, class]: cluster 1 -> class 0 (2), cluster 0 -> class 2 (2), cluster 2 -> class 1 (3)
    metrics = cluster_metrics(labels, predictions)
    assert metrics["acc"] == pytest.approx(7 / 9)
    assert 0 < metrics["nmi"] < 1 and metrics["ari"] < 1
    np.testing.assert_array_equal(match_clusters(labels, predictions), [2, 0, 1])


def test_matching_is_one_to_one_and_optimal_not_greedy() -> None:
    # counts[cluster, class] = [[3, 2], [2, 0]]. Greedy (cluster 0 -> class 0) scores 3/7,
    # majority vote maps both clusters to class 0; the best one-to-one matching scores 4/7.
    labels = np.array([0, 0, 0, 1, 1, 0, 0])
    predictions = np.array([0, 0, 0, 0, 0, 1, 1])
    metrics = cluster_metrics(labels, predictions)
    assert metrics["acc"] == pytest.approx(4 / 7)
    np.testing.assert_array_equal(match_clusters(labels, predictions), [1, 0])


def test_overclustering_reports_many_to_one_beside_one_to_one() -> None:
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 0])
    predictions = np.array([0, 0, 1, 1, 2, 2, 3, 3, 3])
    # Four clusters, two classes. Many-to-one: each cluster takes its majority class.
    np.testing.assert_array_equal(match_clusters(labels, predictions, many_to_one=True), [0, 0, 1, 1])
    # One-to-one: two clusters stay unmatched (-1) and their images count as wrong.
    one_to_one = match_clusters(labels, predictions)
    assert sorted(one_to_one.tolist()) == [-1, -1, 0, 1]
    metrics = cluster_metrics(labels, predictions)
    assert metrics["acc_many_to_one"] == pytest.approx(8 / 9)
    assert metrics["acc"] == pytest.approx(4 / 9)


def test_many_to_one_is_reported_only_when_clusters_outnumber_classes() -> None:
    labels = np.array([0, 0, 0, 0, 1, 2])
    predictions = np.array([0, 0, 1, 1, 2, 2])
    assert "acc_many_to_one" not in cluster_metrics(labels, predictions)
    # Clusters 0..2 are used for 3 classes, but the model has 4 clusters: overclustering.
    with_probabilities = cluster_metrics(labels, predictions, np.eye(4)[predictions])
    assert with_probabilities["acc"] == pytest.approx(3 / 6)
    assert with_probabilities["acc_many_to_one"] == pytest.approx(5 / 6)
    # A class missing from the evaluated labels still counts when the caller names it.
    assert "acc_many_to_one" not in cluster_metrics(labels, predictions, np.eye(4)[predictions], num_classes=4)


def _top5_case() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """30 images, 10 classes x 3. Two of each class are predicted right; the third goes to
    cluster c+1, with its true cluster ranked 2nd (even c) or 7th (odd c)."""
    labels = np.repeat(np.arange(10), 3)
    probabilities = np.zeros((30, 10))
    for index, label in enumerate(labels):
        if index % 3 < 2:
            order = [label] + [c for c in range(10) if c != label]
        else:
            wrong = (label + 1) % 10
            others = [c for c in range(10) if c not in (label, wrong)]
            position = 1 if label % 2 == 0 else 6
            order = [wrong] + others[: position - 1] + [label] + others[position - 1 :]
        probabilities[index, order] = np.linspace(0.5, 0.01, 10)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    return labels, probabilities.argmax(axis=1), probabilities


def test_top5_by_hand() -> None:
    labels, predictions, probabilities = _top5_case()
    metrics = cluster_metrics(labels, predictions, probabilities)
    assert metrics["acc"] == pytest.approx(20 / 30)
    assert metrics["top5"] == pytest.approx(25 / 30)


def test_top5_only_with_probabilities_over_more_than_five_clusters() -> None:
    labels, predictions, probabilities = _top5_case()
    assert "top5" not in cluster_metrics(labels, predictions)
    five_labels = labels % 5
    five_predictions = predictions % 5
    five_probabilities = np.eye(5)[five_predictions]
    assert "top5" not in cluster_metrics(five_labels, five_predictions, five_probabilities)
    six = np.eye(6)[five_predictions]
    assert "top5" in cluster_metrics(five_labels, five_predictions, six)


def test_confusion_matrix_rows_sum_to_one_and_follow_matching() -> None:
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
    predictions = np.array([1, 1, 0, 2, 2, 2, 0, 0, 1])  # matched: 1->0, 0->2, 2->1
    matrix = confusion_matrix(labels, predictions, 3)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0)
    expected = np.array([[2 / 3, 0, 1 / 3], [0, 1, 0], [1 / 3, 0, 2 / 3]])  # [true, matched]
    np.testing.assert_allclose(matrix, expected)


def test_confusion_matrix_normalises_rows_of_unequal_classes() -> None:
    labels = np.array([0, 0, 0, 0, 1, 1])
    predictions = np.array([0, 0, 0, 1, 1, 0])  # cluster 0 -> class 0, cluster 1 -> class 1
    matrix = confusion_matrix(labels, predictions, 2)
    np.testing.assert_allclose(matrix, [[3 / 4, 1 / 4], [1 / 2, 1 / 2]])


def test_confusion_matrix_of_permutation_is_identity() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, size=50)
    matrix = confusion_matrix(labels, np.array([2, 3, 1, 0])[labels], 4)
    np.testing.assert_allclose(matrix, np.eye(4))


def test_kmeans_baseline_separates_blobs_and_is_seeded() -> None:
    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    labels = np.repeat(np.arange(3), 20)
    embeddings = centers[labels] + rng.normal(scale=0.5, size=(60, 2))
    clusters, none = kmeans_clusters(embeddings, 3, seed=0)
    assert cluster_metrics(labels, clusters)["acc"] == 1.0 and none is None
    np.testing.assert_array_equal(clusters, kmeans_clusters(embeddings, 3, seed=0)[0])
    _, new = kmeans_clusters(embeddings, 3, seed=0, also=centers + 0.1)
    np.testing.assert_array_equal(new, clusters[[0, 20, 40]])  # new points join their blob's cluster


def test_cluster_summary_reports_sizes_and_empty_clusters() -> None:
    summary = cluster_summary(np.array([0, 0, 2, 2, 2]), np.array([0.5, 0.7, 0.9, 1.0, 0.4]), 4)
    assert summary["cluster_sizes"] == [2, 0, 3, 0]
    assert summary["nonempty_clusters"] == 2
    assert summary["mean_confidence"] == pytest.approx(0.7)


def test_confusion_matrix_of_overclustering_maps_every_cluster_to_a_class() -> None:
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    predictions = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    np.testing.assert_allclose(confusion_matrix(labels, predictions, 4), np.eye(2))
