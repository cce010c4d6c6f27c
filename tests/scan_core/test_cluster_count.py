"""scan.num_clusters: auto: the fewest clusters near the best neighbor-graph modularity."""

from __future__ import annotations

import numpy as np
import pytest

from scan_core.cluster_count import estimate_num_clusters
from scan_core.defaults import auto_cluster_counts
from scan_core.mining import mine_neighbors, neighbor_matrix


def test_the_number_of_well_separated_groups_is_found() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 8)) * 6
    embeddings = np.concatenate([centre + rng.normal(size=(50, 8)) for centre in centres])
    _, neighbors = neighbor_matrix(mine_neighbors(embeddings.astype(np.float32), 10), 10)
    estimate = estimate_num_clusters(embeddings, neighbors, range(2, 16), seed=0)
    assert estimate.chosen == 6
    assert set(estimate.curve) == set(range(2, 16))
    assert max(estimate.curve, key=estimate.curve.get) >= 6
    recorded = estimate.as_dict()
    assert recorded["chosen"] == 6 and "modularity" in recorded["criterion"] and len(recorded["curve"]) == 14


def test_candidates_below_two_are_refused() -> None:
    with pytest.raises(ValueError, match="2 or more"):
        estimate_num_clusters(np.zeros((10, 2)), np.zeros((10, 1), dtype=int), range(1, 4), seed=0)


def test_auto_counts_grow_with_the_data_and_stop_at_fifty() -> None:
    assert auto_cluster_counts(60) == range(2, 7)
    assert auto_cluster_counts(1_797) == range(2, 51)
    assert auto_cluster_counts(5) == range(2, 3)
