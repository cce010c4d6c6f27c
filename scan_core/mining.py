"""Nearest-neighbor mining: cosine top-k of every image, exact or (above a size) approximate
with its recall measured, stored as a long Parquet table written in row groups.

The search backends are in :mod:`scan_core.knn`; this module decides which to use, removes
each image from its own neighbors, and reads and writes the table column by column (never
one Python object per row).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from scan_core.knn import (backend_name, exact_search, faiss_module, ivf_lists, ivf_search, recall_at_k,
                           torch_search)

__all__ = ["NEIGHBOR_COLUMNS", "MinedNeighbors", "l2_normalize", "mine_neighbors", "neighbor_matrix",
           "neighbor_purity", "read_neighbor_matrix", "search_neighbors", "torch_search", "write_neighbors"]

NEIGHBOR_COLUMNS = {"anchor": "int64", "rank": "int32", "neighbor": "int64", "similarity": "float32"}
NEIGHBOR_SCHEMA = pa.schema([(name, pa.from_numpy_dtype(np.dtype(dtype))) for name, dtype in NEIGHBOR_COLUMNS.items()])
ROW_GROUP_ROWS = 65_536  # rows of the long table per Parquet row group (whole anchors each)
DEFAULT_NPROBE = 64
DEFAULT_RECALL_SAMPLE = 1000

logger = logging.getLogger(__name__)


def l2_normalize(features: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, float32 (one new array: the quotient is not copied again)."""
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return (features / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


@dataclass
class MinedNeighbors:
    """Every anchor's ``topk`` neighbors, as arrays: ``ids[N]`` (image index of each anchor),
    ``neighbors[N, k]`` (image indices, nearest first) and ``similarities[N, k]``; how they were
    found (``index``: exact | ivf, ``backend``: faiss-gpu | faiss-cpu | torch) and the recall@k
    of the approximate index against exact search on ``recall_queries`` sampled anchors."""

    ids: np.ndarray
    neighbors: np.ndarray
    similarities: np.ndarray
    index: str
    backend: str
    recall_at_k: float
    recall_queries: int = 0
    nlist: int | None = None
    nprobe: int | None = None

    def columns(self, start: int = 0, stop: int | None = None) -> dict[str, np.ndarray]:
        """The long table's columns for anchors ``start:stop`` (all by default)."""
        neighbors = self.neighbors[start:stop]
        count, topk = neighbors.shape
        return {
            "anchor": np.repeat(self.ids[start:stop], topk).astype(np.int64),
            "rank": np.tile(np.arange(1, topk + 1, dtype=np.int32), count),
            "neighbor": neighbors.reshape(-1).astype(np.int64),
            "similarity": self.similarities[start:stop].reshape(-1).astype(np.float32),
        }

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.columns())

    def search_metrics(self) -> dict:
        """What ``metrics/mine.json`` records of the search. Exact search has recall 1.0 by
        construction (not measured: no ``recall_queries``), so experiments compare on one key."""
        metrics: dict = {"index": self.index, "backend": self.backend, "recall_at_k": round(self.recall_at_k, 6)}
        if self.index != "exact":
            metrics.update(recall_queries=self.recall_queries, nlist=self.nlist, nprobe=self.nprobe)
        return metrics


def _drop_self(found: np.ndarray, similarities: np.ndarray, rows: np.ndarray,
               topk: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first ``topk`` hits of each query that are neither the query itself (row ``rows[i]``)
    nor a missing hit (-1). A row whose self fell outside the window (exact duplicates tie
    with it) simply drops its last hit. Returns ``(neighbors, similarities, complete)``, where
    rows that are not ``complete`` had fewer than ``topk`` hits (an IVF probe came up short)."""
    usable = (found != rows[:, None]) & (found >= 0)
    keep = usable & (np.cumsum(usable, axis=1) <= topk)
    complete = keep.sum(axis=1) == topk
    neighbors = np.zeros((len(found), topk), dtype=np.int64)
    scores = np.zeros((len(found), topk), dtype=np.float32)
    neighbors[complete] = found[complete][keep[complete]].reshape(-1, topk)
    scores[complete] = similarities[complete][keep[complete]].reshape(-1, topk)
    return neighbors, scores, complete


def _exact_neighbors(vectors: np.ndarray, topk: int, device: torch.device | str,
                     rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact neighbors (self removed) of ``rows`` (default: all) among all vectors."""
    queries = None if rows is None else vectors[rows]
    similarities, found = exact_search(vectors, topk + 1, device, queries=queries)
    neighbors, scores, _ = _drop_self(found, similarities, np.arange(len(vectors)) if rows is None else rows, topk)
    return neighbors, scores


def _approximate(vectors: np.ndarray, topk: int, device: torch.device | str, nprobe: int, recall_sample: int,
                 seed: int) -> tuple[np.ndarray, np.ndarray, float, int]:
    """IVF neighbors of every vector, rows the probes left short searched exactly, and the
    recall@k against exact search on ``recall_sample`` seeded anchors."""
    similarities, found = ivf_search(vectors, topk + 1, nprobe, device, seed=seed)
    rows = np.arange(len(vectors))
    neighbors, scores, complete = _drop_self(found, similarities, rows, topk)
    if not complete.all():
        short = np.flatnonzero(~complete)
        logger.info("%d anchors had fewer than %d neighbors in their probed lists; searched exactly", len(short), topk)
        neighbors[short], scores[short] = _exact_neighbors(vectors, topk, device, short)
    sample = np.sort(np.random.default_rng(seed).choice(len(vectors), min(recall_sample, len(vectors)), replace=False))
    truth, _ = _exact_neighbors(vectors, topk, device, sample)
    return neighbors, scores, recall_at_k(neighbors[sample], truth), len(sample)


def search_neighbors(embeddings: np.ndarray, topk: int, ids: np.ndarray | None = None,
                     device: torch.device | str = "cpu", *, approximate_above: int | None = None,
                     nprobe: int = DEFAULT_NPROBE, recall_sample: int = DEFAULT_RECALL_SAMPLE,
                     seed: int = 0) -> MinedNeighbors:
    """The ``topk`` most cosine-similar other images of every image, as arrays.

    ``ids`` maps rows of ``embeddings`` to the image indices written in the table (the
    manifest's ``index``). An image is never its own neighbor, even when duplicates tie with
    it. Exact search up to ``approximate_above`` anchors (None: always), an IVF-Flat index
    above it, with ``nprobe`` lists probed and its recall@k measured on ``recall_sample``
    anchors. faiss searches when installed (the ``cpu`` or ``gpu`` extra; on the GPU of a CUDA
    ``device`` with faiss-gpu); without it, torch searches exactly on ``device``, with a warning.
    """
    count = len(embeddings)
    if not 0 < topk < count:
        raise ValueError(f"topk must be between 1 and {count - 1} (number of images - 1), got {topk}")
    vectors = l2_normalize(np.asarray(embeddings, dtype=np.float32))
    ids = np.arange(count) if ids is None else np.asarray(ids)
    approximate = approximate_above is not None and count > approximate_above
    if faiss_module() is None:
        logger.warning('faiss is not installed, mining with exact search in torch on %s%s; for faiss install '
                       'an extra: pip install -e ".[cpu]" (or ".[gpu]" on a CUDA machine)', device,
                       f" although {count} anchors are above mine.approximate_above={approximate_above} "
                       f"(the approximate index needs faiss)" if approximate else "")
        approximate = False
    backend = backend_name(device)
    if approximate:
        nlist = ivf_lists(count)
        neighbors, scores, recall, queries = _approximate(vectors, topk, device, nprobe, recall_sample, seed)
        return MinedNeighbors(ids, ids[neighbors], scores, "ivf", backend, recall, queries, nlist, min(nprobe, nlist))
    neighbors, scores = _exact_neighbors(vectors, topk, device)
    return MinedNeighbors(ids, ids[neighbors], scores, "exact", backend, 1.0)


def mine_neighbors(embeddings: np.ndarray, topk: int, ids: np.ndarray | None = None,
                   device: torch.device | str = "cpu", **search: object) -> pd.DataFrame:
    """:func:`search_neighbors` as the long table: columns anchor, rank (1 = nearest), neighbor,
    similarity, ordered by anchor row then rank."""
    return search_neighbors(embeddings, topk, ids, device, **search).table()  # type: ignore[arg-type]


def write_neighbors(path: Path | str, mined: MinedNeighbors, row_group_rows: int = ROW_GROUP_ROWS) -> int:
    """Write the long table to Parquet, one row group of whole anchors (at most
    ``row_group_rows`` rows) at a time; returns the number of row groups."""
    anchors_per_group = max(1, row_group_rows // mined.neighbors.shape[1])
    groups = 0
    with pq.ParquetWriter(path, NEIGHBOR_SCHEMA) as writer:
        for start in range(0, len(mined.ids), anchors_per_group):
            columns = mined.columns(start, start + anchors_per_group)
            writer.write_table(pa.table(columns, schema=NEIGHBOR_SCHEMA), row_group_size=len(columns["anchor"]))
            groups += 1
    return groups


def _matrix(anchor: np.ndarray, rank: np.ndarray, neighbor: np.ndarray,
            num_neighbors: int) -> tuple[np.ndarray, np.ndarray]:
    available = int(rank.max())
    if num_neighbors > available:
        raise ValueError(f"num_neighbors={num_neighbors} but only top-{available} neighbors were mined")
    anchors = anchor[::available]
    in_order = (len(rank) % available == 0 and (rank.reshape(-1, available) == np.arange(1, available + 1)).all()
                and (anchor.reshape(-1, available) == anchors[:, None]).all() and (np.diff(anchors) > 0).all())
    if in_order:  # as write_neighbors writes it: no sort needed
        return anchors, neighbor.reshape(-1, available)[:, :num_neighbors]
    wanted = rank <= num_neighbors
    order = np.lexsort((rank[wanted], anchor[wanted]))
    return anchor[wanted][order][::num_neighbors], neighbor[wanted][order].reshape(-1, num_neighbors)


def neighbor_matrix(table: Mapping[str, np.ndarray] | pd.DataFrame,
                    num_neighbors: int) -> tuple[np.ndarray, np.ndarray]:
    """Anchors (ascending) and their first ``num_neighbors`` neighbors as ``(anchors[N], neighbors[N, k])``."""
    return _matrix(*(np.asarray(table[name]) for name in ("anchor", "rank", "neighbor")), num_neighbors)


def read_neighbor_matrix(path: Path | str, num_neighbors: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`neighbor_matrix` of a neighbors Parquet file (all mined neighbors when None),
    reading only the three columns it needs, straight into arrays."""
    columns = pq.read_table(path, columns=["anchor", "rank", "neighbor"])
    anchor, rank, neighbor = (columns.column(name).to_numpy() for name in ("anchor", "rank", "neighbor"))
    return _matrix(anchor, rank, neighbor, int(rank.max()) if num_neighbors is None else num_neighbors)


def _cumulative_purity(known: np.ndarray, same: np.ndarray, ks: list[int]) -> dict[int, float]:
    """Purity at each k from per-rank counts (index r = rank r + 1) of known and same-label pairs."""
    known, same = np.cumsum(known), np.cumsum(same)
    return {k: float(same[k - 1] / known[k - 1]) for k in ks if k <= len(known) and known[k - 1] > 0}


def neighbor_purity(table: Mapping[str, np.ndarray] | pd.DataFrame, labels: np.ndarray,
                    ks: list[int]) -> dict[int, float]:
    """Share of each anchor's top-k neighbors that carry the anchor's label, for each k, over
    the pairs whose labels are both known (an unlabeled split marks its rows -1)."""
    anchor_labels = labels[np.asarray(table["anchor"])]
    neighbor_labels = labels[np.asarray(table["neighbor"])]
    ranks = np.asarray(table["rank"])
    known = (anchor_labels >= 0) & (neighbor_labels >= 0)
    same = known & (anchor_labels == neighbor_labels)
    length = int(ranks.max()) + 1
    return _cumulative_purity(np.bincount(ranks[known], minlength=length)[1:],
                              np.bincount(ranks[same], minlength=length)[1:], ks)


def mined_purity(mined: MinedNeighbors, labels: np.ndarray, ks: list[int]) -> dict[int, float]:
    """:func:`neighbor_purity` of mined neighbors, from the ``[N, k]`` arrays."""
    anchor_labels, neighbor_labels = labels[mined.ids][:, None], labels[mined.neighbors]
    known = (anchor_labels >= 0) & (neighbor_labels >= 0)
    return _cumulative_purity(known.sum(axis=0), (known & (anchor_labels == neighbor_labels)).sum(axis=0), ks)
