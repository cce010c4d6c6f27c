"""Clustering metrics: Hungarian-matched accuracy, NMI, ARI, top-5, and the k-means baseline.

A negative label means the image's class is unknown (an unlabeled split joined to a
labeled one, e.g. STL-10's); the metrics leave such images out.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score


def labeled_mask(labels: np.ndarray) -> np.ndarray:
    """Which images have a known label (a class index, not a negative placeholder)."""
    return np.asarray(labels) >= 0


def _labeled_only(labels: np.ndarray, predictions: np.ndarray,
                  probabilities: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    labels = np.asarray(labels, dtype=np.int64)
    known = labeled_mask(labels)
    if not known.any():
        raise ValueError(f"none of the {len(labels)} images has a known label; there is nothing to score")
    predictions = np.asarray(predictions, dtype=np.int64)[known]
    return labels[known], predictions, (probabilities[known] if probabilities is not None else None)


def contingency(labels: np.ndarray, predictions: np.ndarray, num_clusters: int, num_classes: int) -> np.ndarray:
    """``counts[cluster, class]``: how many images of each class fell in each cluster."""
    counts = np.zeros((num_clusters, num_classes), dtype=np.int64)
    np.add.at(counts, (predictions, labels), 1)
    return counts


def match_clusters(labels: np.ndarray, predictions: np.ndarray, num_clusters: int | None = None,
                   many_to_one: bool = False) -> np.ndarray:
    """A class for every cluster. One-to-one (Hungarian, the paper's ACC): with more clusters
    than classes the clusters left unmatched get -1 and count as wrong. Many-to-one: each
    cluster takes its majority class, the fair score for overclustering."""
    num_classes = int(labels.max()) + 1
    num_clusters = max(num_clusters or 0, int(predictions.max()) + 1)
    counts = contingency(labels, predictions, num_clusters, num_classes)
    if many_to_one:
        return counts.argmax(axis=1)
    clusters, classes = linear_sum_assignment(counts, maximize=True)
    mapping = np.full(num_clusters, -1, dtype=np.int64)
    mapping[clusters] = classes
    return mapping


def cluster_metrics(
    labels: np.ndarray, predictions: np.ndarray, probabilities: np.ndarray | None = None,
    num_classes: int | None = None,
) -> dict[str, float]:
    """ACC (one-to-one Hungarian matching), NMI, ARI; with more clusters than classes also
    ``acc_many_to_one`` (each cluster to its majority class), reported beside ACC, never in
    its place; with probabilities over more than 5 clusters top-5 accuracy (a class counts
    when any cluster standing for it is among the five most probable). Images whose label
    is negative (unknown) are left out."""
    all_predictions = predictions
    labels, predictions, probabilities = _labeled_only(labels, predictions, probabilities)
    num_clusters = probabilities.shape[1] if probabilities is not None else int(np.max(all_predictions)) + 1
    num_classes = max(num_classes or 0, int(labels.max()) + 1)
    overclustered = num_clusters > num_classes
    mapping = match_clusters(labels, predictions, num_clusters)
    metrics = {
        "acc": float((mapping[predictions] == labels).mean()),
        "nmi": float(normalized_mutual_info_score(labels, predictions)),
        "ari": float(adjusted_rand_score(labels, predictions)),
    }
    if overclustered:
        majority = match_clusters(labels, predictions, num_clusters, many_to_one=True)
        metrics["acc_many_to_one"] = float((majority[predictions] == labels).mean())
    if probabilities is not None and probabilities.shape[1] > 5:
        top5_mapping = majority if overclustered else mapping
        top5_clusters = np.argsort(-probabilities, axis=1)[:, :5]
        metrics["top5"] = float((top5_mapping[top5_clusters] == labels[:, None]).any(axis=1).mean())
    return metrics


def pseudo_label_report(labels: np.ndarray, probabilities: np.ndarray, threshold: float) -> dict[str, float]:
    """ACC of the whole clustering and, for self-labeling, how right its pseudo-labels are:
    ``pseudo_label_accuracy`` is the share of the images above ``threshold`` whose cluster,
    matched to a class as for ACC, is their class; ``pseudo_label_purity`` the share whose
    cluster's majority class is theirs (a class cut in two is pure but half unmatched: on
    unequal classes the two differ most). Reporting only; never used to choose."""
    probabilities = np.asarray(probabilities)
    labels, predictions, probabilities = _labeled_only(labels, probabilities.argmax(axis=1), probabilities)
    mapping = match_clusters(labels, predictions, probabilities.shape[1])
    right = mapping[predictions] == labels
    majority = match_clusters(labels, predictions, probabilities.shape[1], many_to_one=True)[predictions] == labels
    confident = probabilities.max(axis=1) > threshold
    if not confident.any():
        return {"acc": float(right.mean()), "pseudo_label_accuracy": float("nan"), "pseudo_label_purity": float("nan")}
    return {"acc": float(right.mean()), "pseudo_label_accuracy": float(right[confident].mean()),
            "pseudo_label_purity": float(majority[confident].mean())}


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_clusters: int) -> np.ndarray:
    """Row-normalised ``[true class, matched class]`` confusion after cluster matching
    (many-to-one when there are more clusters than classes, so every image has a class).
    Images whose label is negative (unknown) are left out."""
    labels, predictions, _ = _labeled_only(labels, predictions)
    num_classes = int(labels.max()) + 1
    mapping = match_clusters(labels, predictions, num_clusters, many_to_one=num_clusters > num_classes)
    counts = contingency(mapping[predictions], labels, num_classes, num_classes)
    return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)


def kmeans_clusters(embeddings: np.ndarray, num_clusters: int, seed: int,
                    also: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """The baseline SCAN improves on: k-means on the pretext embeddings. Returns the
    clusters of ``embeddings`` and, when given, of the ``also`` embeddings under the same fit."""
    fitted = KMeans(n_clusters=num_clusters, n_init=10, random_state=seed).fit(embeddings)
    return fitted.labels_, (fitted.predict(also) if also is not None else None)


def cluster_summary(predictions: np.ndarray, confidence: np.ndarray, num_clusters: int) -> dict:
    """What can be said without labels: cluster sizes, empty clusters, mean confidence."""
    sizes = np.bincount(predictions, minlength=num_clusters)
    return {
        "cluster_sizes": sizes.tolist(),
        "nonempty_clusters": int((sizes > 0).sum()),
        "mean_confidence": float(confidence.mean()),
    }
