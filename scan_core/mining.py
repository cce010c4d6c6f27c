"""Nearest-neighbor mining: exact cosine top-k with faiss, stored as a long table."""

from __future__ import annotations

import faiss
import numpy as np
import pandas as pd

NEIGHBOR_COLUMNS = {"anchor": "int64", "rank": "int32", "neighbor": "int64", "similarity": "float32"}


def l2_normalize(features: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return (features / np.maximum(norms, 1e-12)).astype(np.float32)


def mine_neighbors(embeddings: np.ndarray, topk: int, ids: np.ndarray | None = None) -> pd.DataFrame:
    """The ``topk`` most cosine-similar other images of every image.

    ``ids`` maps rows of ``embeddings`` to the image indices written in the table (the
    manifest's ``index``). An image is never its own neighbor, even when duplicates tie
    with it. Returns columns anchor, rank (1 = nearest), neighbor, similarity.
    """
    count = len(embeddings)
    if not 0 < topk < count:
        raise ValueError(f"topk must be between 1 and {count - 1} (number of images - 1), got {topk}")
    vectors = l2_normalize(np.asarray(embeddings, dtype=np.float32))
    index = faiss.IndexFlatIP(vectors.shape[1])
    if hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0:  # faiss-gpu installed (the gpu extra)
        index = faiss.index_cpu_to_all_gpus(index)
    index.add(vectors)
    similarities, found = index.search(vectors, topk + 1)
    rows = np.arange(count)[:, None]
    not_self = found != rows
    # Keep the first topk non-self hits per row; a row whose self fell outside the
    # search window (exact duplicates) simply drops its last hit instead.
    keep = not_self & (np.cumsum(not_self, axis=1) <= topk)
    neighbors = found[keep].reshape(count, topk)
    scores = similarities[keep].reshape(count, topk)
    ids = np.arange(count) if ids is None else np.asarray(ids)
    return pd.DataFrame(
        {
            "anchor": np.repeat(ids, topk).astype(np.int64),
            "rank": np.tile(np.arange(1, topk + 1), count).astype(np.int32),
            "neighbor": ids[neighbors.reshape(-1)].astype(np.int64),
            "similarity": scores.reshape(-1).astype(np.float32),
        }
    )


def neighbor_matrix(table: pd.DataFrame, num_neighbors: int) -> tuple[np.ndarray, np.ndarray]:
    """Anchors and their first ``num_neighbors`` neighbors as ``(anchors[N], neighbors[N, k])``."""
    available = int(table["rank"].max())
    if num_neighbors > available:
        raise ValueError(f"num_neighbors={num_neighbors} but only top-{available} neighbors were mined")
    ordered = table[table["rank"] <= num_neighbors].sort_values(["anchor", "rank"])
    anchors = ordered["anchor"].to_numpy()[::num_neighbors]
    return anchors, ordered["neighbor"].to_numpy().reshape(-1, num_neighbors)


def neighbor_purity(table: pd.DataFrame, labels: np.ndarray, ks: list[int]) -> dict[int, float]:
    """Share of each anchor's top-k neighbors that carry the anchor's label, for each k."""
    same = labels[table["anchor"].to_numpy()] == labels[table["neighbor"].to_numpy()]
    ranks = table["rank"].to_numpy()
    return {k: float(same[ranks <= k].mean()) for k in ks if k <= ranks.max()}
