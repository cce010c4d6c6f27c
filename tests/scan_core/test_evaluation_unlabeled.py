"""Metrics over a mix of labeled and unlabeled images score the labeled ones only."""

from __future__ import annotations

import numpy as np
import pytest

from scan_core.evaluation import cluster_metrics, confusion_matrix, kmeans_clusters, labeled_mask


def _mixed(seed: int = 0):
    """12 clusters over 200 images of 8 classes; 80 of them unlabeled and predicted badly."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 8, size=200)
    predictions = (labels + (rng.random(200) < 0.2) * rng.integers(1, 12, size=200)) % 12
    probabilities = rng.dirichlet(np.ones(12), size=200)
    unknown = rng.permutation(200)[:80]
    labels[unknown] = -1
    predictions[unknown] = 11  # would cost ACC and NMI if the unlabeled rows were scored
    return labels, predictions, probabilities


def test_unlabeled_rows_are_left_out_of_every_metric():
    labels, predictions, probabilities = _mixed()
    known = labeled_mask(labels)
    assert known.sum() == 120
    mixed = cluster_metrics(labels, predictions, probabilities, num_classes=8)
    only_labeled = cluster_metrics(labels[known], predictions[known], probabilities[known], num_classes=8)
    assert mixed == only_labeled
    assert set(mixed) == {"acc", "nmi", "ari", "acc_many_to_one", "top5"}
    np.testing.assert_array_equal(confusion_matrix(labels, predictions, 12),
                                  confusion_matrix(labels[known], predictions[known], 12))


def test_kmeans_baseline_is_scored_on_the_labeled_rows_too():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(3, 4)) * 10
    labels = np.repeat(np.arange(3), 20)
    embeddings = centres[labels] + rng.normal(size=(60, 4))
    labels[::3] = -1  # a third of the images have no label; k-means still clusters them all
    clusters, _ = kmeans_clusters(embeddings, 3, seed=0)
    assert len(clusters) == 60
    assert cluster_metrics(labels, clusters)["acc"] == 1.0


def test_no_labeled_row_is_an_error_not_a_score():
    with pytest.raises(ValueError, match="none of the 3 images has a known label"):
        cluster_metrics(np.array([-1, -1, -1]), np.array([0, 1, 0]))
