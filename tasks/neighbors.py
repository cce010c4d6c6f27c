"""Reading the mine stage's neighbors back, in the positions the training loop indexes."""

from __future__ import annotations

import numpy as np
import torch

from scan_core.mining import read_neighbor_matrix
from tasks.paths import NEIGHBORS_FILE
from tasks.prepared import Prepared


def training_neighbors(prepared: Prepared, num_neighbors: int | None = None) -> torch.Tensor:
    """Neighbors as positions among the training rows; all mined neighbors when
    ``num_neighbors`` is None, each image itself when it is 0 (the paper's K = 0 ablation).
    Stops when the neighbors were mined on other images than the prepared ones."""
    if num_neighbors == 0:
        return torch.arange(len(prepared.train_rows))[:, None]
    anchors, neighbors = read_neighbor_matrix(NEIGHBORS_FILE, num_neighbors)
    position = np.full(len(prepared.manifest), -1)
    position[prepared.train_rows] = np.arange(len(prepared.train_rows))
    known = (anchors < len(position)) & (neighbors.max(axis=1) < len(position))
    if not known.all() or len(anchors) != len(prepared.train_rows) or (position[anchors] < 0).any() \
            or (position[neighbors] < 0).any():
        raise FileNotFoundError(
            f"{NEIGHBORS_FILE} does not belong to the prepared images ({len(anchors)} anchors for "
            f"{len(prepared.train_rows)} training images); rerun it: dvc repro mine")
    ordered = np.empty_like(neighbors)
    ordered[position[anchors]] = position[neighbors]
    return torch.from_numpy(ordered)
