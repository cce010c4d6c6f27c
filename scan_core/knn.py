"""Top-k inner-product search among unit vectors: exact (faiss ``IndexFlatIP``, or a blocked
matmul + top-k in torch on any device) and approximate (faiss IVF-Flat).

Why IVF-Flat for the approximate index rather than HNSW: it is the one index faiss runs on
both the CPU and the GPU (faiss has no GPU HNSW), building it is a k-means on a sample of the
vectors (seconds) where an HNSW graph is built insert by insert and keeps 2*M links per
vector in memory besides, and its one knob, ``nprobe`` (lists searched per query), trades
time for recall predictably. The recall is not assumed: the caller measures it on a sample.

Imports neither faiss (optional: the ``cpu``/``gpu`` extras) nor anything beyond torch and
numpy, so the torch path runs on a machine that has only those.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import numpy as np
import torch

# The torch search scores a block of queries against a block of keys at a time; the block
# holds at most this many similarities (128 MiB of float32 on a CPU, 1 GiB on a GPU), and
# keys go in blocks of at most KEY_BLOCK_ROWS, so memory beyond the vectors is bounded.
SEARCH_BLOCK_ELEMENTS = 1 << 25
CUDA_SEARCH_BLOCK_ELEMENTS = 1 << 28
KEY_BLOCK_ROWS = 1 << 18
# IVF: about 4 sqrt(N) lists, each trained from at most this many sampled vectors (faiss
# warns below 39 per list, and samples down to 256 per list itself).
LIST_FACTOR = 4
MIN_TRAIN_PER_LIST = 39
TRAIN_PER_LIST = 64


def faiss_module() -> ModuleType | None:
    """The faiss module, or None when neither the ``cpu`` nor the ``gpu`` extra is installed."""
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def faiss_gpu(device: torch.device | str) -> int | None:
    """The GPU faiss should search on: ``device``'s index when it is a CUDA device and faiss-gpu
    sees a GPU, else None (faiss on the CPU)."""
    faiss, device = faiss_module(), torch.device(device)
    if faiss is None or device.type != "cuda" or not hasattr(faiss, "get_num_gpus") or faiss.get_num_gpus() == 0:
        return None
    return device.index or 0


def backend_name(device: torch.device | str) -> str:
    """Which exact search :func:`exact_search` uses on ``device``: faiss-gpu, faiss-cpu or torch."""
    if faiss_module() is None:
        return "torch"
    return "faiss-gpu" if faiss_gpu(device) is not None else "faiss-cpu"


def _on_gpu(faiss: ModuleType, index: Any, gpu: int | None) -> Any:
    """``index`` moved to GPU ``gpu`` (its resources kept alive on it), or unchanged for None."""
    if gpu is None:
        return index
    resources = faiss.StandardGpuResources()
    moved = faiss.index_cpu_to_gpu(resources, gpu, index)
    # Freed with the index, not before; faiss's Python wrappers allow only this extra attribute.
    moved.referenced_objects = [*getattr(moved, "referenced_objects", []), resources]
    return moved


def faiss_exact_search(vectors: np.ndarray, count: int, device: torch.device | str = "cpu",
                       queries: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-``count`` of each query (default: every vector) among
    ``vectors`` with faiss ``IndexFlatIP``, on the GPU of ``device`` when faiss-gpu is
    installed: ``(similarities[Q, count], indices[Q, count])``."""
    faiss = faiss_module()
    if faiss is None:
        raise ImportError('faiss is not installed: pip install -e ".[cpu]" (or ".[gpu]" on a CUDA machine)')
    index = _on_gpu(faiss, faiss.IndexFlatIP(vectors.shape[1]), faiss_gpu(device))
    index.add(vectors)
    return index.search(vectors if queries is None else queries, count)


@contextlib.contextmanager
def _full_float32_matmul() -> Iterator[None]:
    """Exact float32 products while searching, whatever TF32 setting training chose."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


@torch.no_grad()
def torch_search(vectors: np.ndarray, count: int, device: torch.device | str = "cpu",
                 block_elements: int | None = None, key_block: int = KEY_BLOCK_ROWS,
                 queries: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The same exact search as :func:`faiss_exact_search`, in torch on ``device`` (CUDA too).

    Queries go in blocks, keys in blocks of at most ``key_block`` rows; each block pair is one
    matmul of at most ``block_elements`` similarities whose top-k is merged into the running
    top-k of its queries. The vectors themselves must fit on the device; nothing else grows
    with their number.
    """
    device = torch.device(device)
    if block_elements is None:
        block_elements = CUDA_SEARCH_BLOCK_ELEMENTS if device.type == "cuda" else SEARCH_BLOCK_ELEMENTS
    keys = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32)).to(device)
    asked = keys if queries is None else torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32)).to(device)
    key_block = max(count, min(len(keys), key_block))
    query_block = max(1, block_elements // key_block)
    similarities = np.empty((len(asked), count), dtype=np.float32)
    indices = np.empty((len(asked), count), dtype=np.int64)
    with _full_float32_matmul():
        for start in range(0, len(asked), query_block):
            values, found = _top_among_keys(asked[start : start + query_block], keys, count, key_block)
            similarities[start : start + len(values)] = values.cpu().numpy()
            indices[start : start + len(values)] = found.cpu().numpy()
    return similarities, indices


def _top_among_keys(block: torch.Tensor, keys: torch.Tensor, count: int,
                    key_block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``count`` keys of each row of ``block``, merging the top-k of key blocks in turn."""
    best_values = best_indices = None
    for start in range(0, len(keys), key_block):
        scores = block @ keys[start : start + key_block].T
        top = torch.topk(scores, min(count, scores.shape[1]), dim=1, largest=True, sorted=True)
        values, found = top.values, top.indices + start
        if best_values is not None:
            values, found = torch.cat([best_values, values], dim=1), torch.cat([best_indices, found], dim=1)
            merged = torch.topk(values, count, dim=1, largest=True, sorted=True)
            values, found = merged.values, torch.gather(found, 1, merged.indices)
        best_values, best_indices = values, found
    return best_values, best_indices


def exact_search(vectors: np.ndarray, count: int, device: torch.device | str = "cpu",
                 queries: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact search with faiss when installed (on the GPU of a CUDA ``device`` with faiss-gpu),
    otherwise in torch on ``device``."""
    if faiss_module() is None:
        return torch_search(vectors, count, device, queries=queries)
    return faiss_exact_search(vectors, count, device, queries)


def ivf_lists(count: int) -> int:
    """Number of inverted lists for ``count`` vectors: about 4 sqrt(N), with at least 39
    training vectors per list."""
    return max(1, min(round(LIST_FACTOR * math.sqrt(count)), count // MIN_TRAIN_PER_LIST))


def build_ivf(vectors: np.ndarray, nprobe: int, device: torch.device | str = "cpu", seed: int = 0,
              nlist: int | None = None) -> Any:
    """A faiss IVF-Flat index (inner product) of ``vectors``, on the GPU of a CUDA ``device``
    with faiss-gpu: lists from a k-means on a seeded sample, ``nprobe`` lists searched per query."""
    faiss = faiss_module()
    if faiss is None:
        raise ImportError('the approximate index needs faiss: pip install -e ".[cpu]" (or ".[gpu]")')
    nlist = nlist or ivf_lists(len(vectors))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(vectors.shape[1]), vectors.shape[1], nlist,
                               faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    index = _on_gpu(faiss, index, faiss_gpu(device))
    sample = np.random.default_rng(seed).choice(len(vectors), min(len(vectors), TRAIN_PER_LIST * nlist),
                                                replace=False)
    index.train(vectors[np.sort(sample)])
    index.add(vectors)
    index.nprobe = min(nprobe, nlist)
    return index


def ivf_search(vectors: np.ndarray, count: int, nprobe: int, device: torch.device | str = "cpu",
               seed: int = 0, nlist: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Approximate top-``count`` of every vector among all of them with :func:`build_ivf`'s
    index. A query whose probed lists hold fewer than ``count`` vectors gets index -1 (and
    similarity -inf) in the missing places."""
    return build_ivf(vectors, nprobe, device, seed, nlist).search(vectors, count)


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each row's true top-k (``truth[Q, k]``) that ``found[Q, k]`` holds."""
    if found.shape != truth.shape:
        raise ValueError(f"found {found.shape} and truth {truth.shape} differ in shape")
    hits = (found[:, :, None] == truth[:, None, :]).any(axis=1)
    return float(hits.mean())
