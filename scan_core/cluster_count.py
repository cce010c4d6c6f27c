"""How many clusters, without labels (``scan.num_clusters: auto``).

Users often do not know how many kinds of images they have. The mined neighbors say which
images belong together, so a partition is judged by how many neighbor pairs it keeps in one
cluster beyond what clusters of the same sizes would keep by chance (the modularity of the
directed k-nearest-neighbor graph). It rises while real groups are being separated and
levels off once groups are only being cut apart. The estimate is the fewest clusters whose
k-means partition of the pretext embeddings comes within ``tolerance`` of the best
modularity: the start of the plateau, not a noisy maximum on it. On digits (5 pretext seeds,
10 classes) it gave 10 every time while the maximum itself fell on 10, 11 or 12.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans

from scan_core.health import neighbor_modularity

CRITERION = "modularity of k-means partitions on the mined neighbor graph"


@dataclass(frozen=True)
class ClusterCountEstimate:
    chosen: int
    curve: dict[int, float]
    tolerance: float

    def as_dict(self) -> dict:
        return {"chosen": self.chosen, "criterion": CRITERION, "tolerance": self.tolerance,
                "curve": {str(count): round(value, 6) for count, value in self.curve.items()}}


def estimate_num_clusters(embeddings: np.ndarray, neighbors: np.ndarray, candidates: range, seed: int,
                          tolerance: float = 0.01) -> ClusterCountEstimate:
    """The fewest candidate counts whose modularity is at least ``(1 - tolerance)`` times the
    best; ``neighbors[i]`` are row indices (into ``embeddings``) of image i's neighbors."""
    if len(candidates) == 0 or min(candidates) < 2:
        raise ValueError(f"candidate cluster counts must be 2 or more, got {list(candidates)}")
    curve = {}
    for count in candidates:
        clusters = KMeans(n_clusters=count, n_init=3, random_state=seed).fit_predict(embeddings)
        curve[count] = neighbor_modularity(clusters, neighbors)
    best = max(curve.values())
    chosen = min(count for count, value in curve.items() if value >= (1 - tolerance) * best)
    return ClusterCountEstimate(chosen, curve, tolerance)
