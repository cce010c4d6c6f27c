"""Nearest-neighbor mining: exact cosine top-k (faiss, or torch without it), stored as a long table."""

from __future__ import annotations

import logging
from types import ModuleType

import numpy as np
import pandas as pd
import torch

NEIGHBOR_COLUMNS = {"anchor": "int64", "rank": "int32", "neighbor": "int64", "similarity": "float32"}

# The torch fallback scores one block of queries against every vector at a time; the
# block holds at most this many similarities (128 MiB of float32), whatever the data size.
SEARCH_BLOCK_ELEMENTS = 1 << 25

logger = logging.getLogger(__name__)


def l2_normalize(features: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return (features / np.maximum(norms, 1e-12)).astype(np.float32)


def _faiss() -> ModuleType | None:
    """The faiss module, or None when neither the ``cpu`` nor the ``gpu`` extra is installed."""
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def faiss_search(vectors: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-``count`` of every row of ``vectors`` against all rows, with
    faiss (on all GPUs when faiss-gpu is installed): ``(similarities[N, count], indices[N, count])``."""
    faiss = _faiss()
    if faiss is None:
        raise ImportError('faiss is not installed: pip install -e ".[cpu]" (or ".[gpu]" on a CUDA machine)')
    index = faiss.IndexFlatIP(vectors.shape[1])
    if hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0:  # faiss-gpu installed (the gpu extra)
        index = faiss.index_cpu_to_all_gpus(index)
    index.add(vectors)
    return index.search(vectors, count)


@torch.no_grad()
def torch_search(vectors: np.ndarray, count: int, device: torch.device | str = "cpu",
                 block_elements: int = SEARCH_BLOCK_ELEMENTS) -> tuple[np.ndarray, np.ndarray]:
    """The same exact search as :func:`faiss_search`, in torch on ``device``.

    Queries go in blocks of at most ``block_elements`` similarities, so memory beyond the
    vectors themselves stays bounded however many images there are.
    """
    base = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32)).to(device)
    block = max(1, block_elements // len(base))
    similarities, indices = [], []
    for start in range(0, len(base), block):
        scores = base[start : start + block] @ base.T
        top = torch.topk(scores, count, dim=1, largest=True, sorted=True)
        similarities.append(top.values.cpu())
        indices.append(top.indices.cpu())
    return torch.cat(similarities).numpy(), torch.cat(indices).numpy().astype(np.int64)


def mine_neighbors(embeddings: np.ndarray, topk: int, ids: np.ndarray | None = None,
                   device: torch.device | str = "cpu") -> pd.DataFrame:
    """The ``topk`` most cosine-similar other images of every image.

    ``ids`` maps rows of ``embeddings`` to the image indices written in the table (the
    manifest's ``index``). An image is never its own neighbor, even when duplicates tie
    with it. Returns columns anchor, rank (1 = nearest), neighbor, similarity. Searches
    with faiss when a faiss build is installed (the ``cpu`` or ``gpu`` extra), otherwise
    exactly in torch on ``device``, with a warning.
    """
    count = len(embeddings)
    if not 0 < topk < count:
        raise ValueError(f"topk must be between 1 and {count - 1} (number of images - 1), got {topk}")
    vectors = l2_normalize(np.asarray(embeddings, dtype=np.float32))
    if _faiss() is not None:
        similarities, found = faiss_search(vectors, topk + 1)
    else:
        logger.warning('faiss is not installed, mining with exact search in torch on %s; for faiss '
                       'install an extra: pip install -e ".[cpu]" (or ".[gpu]" on a CUDA machine)', device)
        similarities, found = torch_search(vectors, topk + 1, device)
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
    """Share of each anchor's top-k neighbors that carry the anchor's label, for each k, over
    the pairs whose labels are both known (an unlabeled split marks its rows -1)."""
    anchor_labels, neighbor_labels = labels[table["anchor"].to_numpy()], labels[table["neighbor"].to_numpy()]
    known = (anchor_labels >= 0) & (neighbor_labels >= 0)
    same = anchor_labels == neighbor_labels
    ranks = table["rank"].to_numpy()
    return {k: float(same[known & (ranks <= k)].mean()) for k in ks
            if k <= ranks.max() and (known & (ranks <= k)).any()}
