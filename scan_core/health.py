"""What can be said about a clustering without labels.

A user with no labels cannot compute ACC, so they cannot see that SCAN did worse than
k-means. These numbers need only the clusters and the mined neighbors: SCAN's whole premise
is that mined neighbors share a class, so a clustering that splits more neighbor pairs than
k-means does has lost information the neighbors held.
"""

from __future__ import annotations

import numpy as np

CONFIDENT = 0.99


def neighbor_agreement(clusters: np.ndarray, neighbors: np.ndarray) -> float:
    """Share of mined (anchor, neighbor) pairs placed in the same cluster.

    ``neighbors[i]`` are row indices (into ``clusters``) of image i's neighbors.
    """
    clusters = np.asarray(clusters)
    return float((clusters[np.asarray(neighbors)] == clusters[:, None]).mean())


def cluster_balance(clusters: np.ndarray, num_clusters: int) -> float:
    """Entropy of the cluster sizes over its maximum, log(num_clusters): 1.0 = equal sizes, 0 = one cluster."""
    sizes = np.bincount(np.asarray(clusters), minlength=num_clusters).astype(np.float64)
    shares = sizes[sizes > 0] / sizes.sum()
    return float(-(shares * np.log(shares)).sum() / np.log(num_clusters))


def label_free_health(clusters: np.ndarray, num_clusters: int, neighbors: np.ndarray,
                      confidence: np.ndarray | None = None) -> dict[str, float]:
    """Neighbor agreement and the balance of the cluster sizes (``size_balance``); with per-image confidence also its mean and the share
    above 0.99 (the images self-labeling would learn from)."""
    health = {"neighbor_agreement": neighbor_agreement(clusters, neighbors),
              "size_balance": cluster_balance(clusters, num_clusters)}
    if confidence is not None:
        confidence = np.asarray(confidence)
        health["mean_confidence"] = float(confidence.mean())
        health["confident_share"] = float((confidence > CONFIDENT).mean())
    return health


def health_warning(health: dict[str, dict[str, float]]) -> str | None:
    """A warning when SCAN keeps fewer neighbor pairs together than k-means on the same embeddings."""
    kmeans, scan = health.get("kmeans"), health.get("scan")
    if not kmeans or not scan or scan["neighbor_agreement"] >= kmeans["neighbor_agreement"]:
        return None
    return (f"SCAN keeps {scan['neighbor_agreement']:.1%} of mined neighbor pairs in one cluster, fewer than "
            f"k-means on the same embeddings ({kmeans['neighbor_agreement']:.1%}): the clustering step lost "
            f"structure the neighbors held. Try fewer neighbors (scan.num_neighbors), weaker strong "
            f"augmentation (augment.strong_ops) or more scan epochs.")
