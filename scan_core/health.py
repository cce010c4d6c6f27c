"""What can be said about a clustering without labels.

A user with no labels cannot compute ACC, so they cannot see that SCAN did worse than
k-means. These numbers need only the clusters and the mined neighbors: SCAN's whole premise
is that mined neighbors share a class, so a clustering that splits many more neighbor pairs
than k-means does, beyond what its cluster sizes explain, has lost information the neighbors
held. The check compares modularity (pairs kept beyond chance, ``neighbor_modularity``)
with a margin, because a few points either way say nothing: k-means cuts the neighbor graph
where it is thinnest, which is not where the classes part. On a folder of Fashion-MNIST
classes of 50 to 1,000 images the true classes score 0.63 and k-means 0.80 on the same graph,
and self-labeling scored 0.72 with 9 points more ACC than k-means; on digits, SCAN broken by a
30 times too high learning rate scored 0.66 against k-means' 0.80 with ACC 0.54 against 0.79.
"""

from __future__ import annotations

import numpy as np

CONFIDENT = 0.99
# How much lower than k-means' a model's modularity may be before the check speaks up.
HEALTH_MARGIN = 0.08
MODELS_CHECKED = ("scan", "selflabel")


def neighbor_agreement(clusters: np.ndarray, neighbors: np.ndarray) -> float:
    """Share of mined (anchor, neighbor) pairs placed in the same cluster.

    ``neighbors[i]`` are row indices (into ``clusters``) of image i's neighbors.
    """
    clusters = np.asarray(clusters)
    return float((clusters[np.asarray(neighbors)] == clusters[:, None]).mean())


def neighbor_modularity(clusters: np.ndarray, neighbors: np.ndarray) -> float:
    """Share of the pairs (i, neighbors[i, j]) inside one cluster, minus its expectation
    for random clusters of the same sizes (out-share times in-share, summed over clusters).

    Unlike the plain share it does not reward merging: one cluster keeps every pair and scores
    0. Unlike SCAN's entropy term it does not ask for equal sizes: a large class kept whole
    pays only what its size makes likely by chance.
    """
    clusters = np.asarray(clusters)
    num_clusters = int(clusters.max()) + 1
    inside = float((clusters[:, None] == clusters[neighbors]).mean())
    out_share = np.bincount(clusters, minlength=num_clusters) / len(clusters)
    in_share = np.bincount(clusters[neighbors].ravel(), minlength=num_clusters) / neighbors.size
    return inside - float(out_share @ in_share)


def cluster_balance(clusters: np.ndarray, num_clusters: int) -> float:
    """Entropy of the cluster sizes over its maximum, log(num_clusters): 1.0 = equal sizes, 0 = one cluster."""
    sizes = np.bincount(np.asarray(clusters), minlength=num_clusters).astype(np.float64)
    shares = sizes[sizes > 0] / sizes.sum()
    return float(-(shares * np.log(shares)).sum() / np.log(num_clusters))


def label_free_health(clusters: np.ndarray, num_clusters: int, neighbors: np.ndarray,
                      confidence: np.ndarray | None = None) -> dict[str, float]:
    """Neighbor agreement, modularity and the balance of the cluster sizes (``size_balance``);
    with per-image confidence also its mean and the share above 0.99 (the images self-labeling
    would learn from)."""
    health = {"neighbor_agreement": neighbor_agreement(clusters, neighbors),
              "modularity": neighbor_modularity(clusters, neighbors),
              "size_balance": cluster_balance(clusters, num_clusters)}
    if confidence is not None:
        confidence = np.asarray(confidence)
        health["mean_confidence"] = float(confidence.mean())
        health["confident_share"] = float((confidence > CONFIDENT).mean())
    return health


def health_warning(health: dict[str, dict[str, float]], margin: float = HEALTH_MARGIN) -> str | None:
    """A warning when SCAN's or self-labeling's clusters keep clearly fewer neighbor pairs together
    beyond chance (modularity) than k-means on the same embeddings: more than ``margin`` lower."""
    kmeans = health.get("kmeans")
    if not kmeans:
        return None
    worse = [name for name in MODELS_CHECKED
             if name in health and health[name]["modularity"] < kmeans["modularity"] - margin]
    if not worse:
        return None
    described = ", ".join(f"{name} {health[name]['modularity']:.3f}" for name in worse)
    return (f"clusters worse than k-means: modularity on the mined neighbor graph {described} against k-means' "
            f"{kmeans['modularity']:.3f} on the same embeddings (more than {margin:.2f} lower): the clustering "
            f"step lost structure the neighbors held. Try a lower scan.lr, fewer neighbors (scan.num_neighbors), "
            f"weaker strong augmentation (augment.strong_ops) or more scan epochs.")
