"""Start SCAN's heads from k-means partitions of the pretext embeddings (or spectral clusterings
of the mined neighbor graph) instead of at random.

Why: from random heads SCAN can settle in a stable wrong basin, for example two digit classes
each split by handwriting style and the halves paired. Neighbor agreement there equals that of
a correct clustering, so no label-free criterion can pick it out afterwards; starting every
head from a different sensible partition keeps SCAN away from it (digits, 5 pretext seeds:
SCAN ACC min 0.891 -> 0.958, see the seed study in docs/results.md).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import sparse
from scipy.sparse.linalg import eigsh
from sklearn.cluster import KMeans
from torch import Tensor

from scan_core.augment.settings import AugmentSettings
from scan_core.models import ClusteringModel
from scan_core.training.common import compute_features


def kmeans_partitions(embeddings: np.ndarray, num_clusters: int, count: int, seed: int) -> Tensor:
    """``count`` k-means partitions ``[count, N]``, one k-means++ start each with its own seed,
    so that each head starts from a different sensible clustering."""
    return torch.from_numpy(np.stack([
        KMeans(n_clusters=num_clusters, n_init=1, random_state=1000 * seed + index).fit_predict(embeddings)
        for index in range(count)
    ])).long()


def spectral_embedding(neighbors: np.ndarray, dims: int) -> np.ndarray:
    """Rows of the top ``dims`` eigenvectors of the symmetrised, degree-normalised neighbor graph
    (``neighbors``: ``[N, K]`` row indices), each scaled to unit length (Ng, Jordan and Weiss)."""
    rows = len(neighbors)
    if not 0 < dims < rows:
        raise ValueError(f"a spectral start needs fewer clusters than images: {dims} clusters for {rows} images")
    anchors = np.repeat(np.arange(rows), neighbors.shape[1])
    adjacency = sparse.csr_matrix((np.ones(anchors.size), (anchors, neighbors.ravel())), shape=(rows, rows))
    adjacency = ((adjacency + adjacency.T) > 0).astype(np.float64)
    scale = sparse.diags(1 / np.sqrt(np.asarray(adjacency.sum(axis=1)).ravel()))
    normalised = scale @ adjacency @ scale
    if rows <= 200:  # small graphs: exact, where ARPACK needs far fewer vectors than rows
        vectors = np.linalg.eigh(normalised.toarray())[1][:, -dims:]
    else:  # eigsh's own random start would vary from run to run
        start = np.random.default_rng(0).random(rows)
        vectors = eigsh(normalised, k=dims, which="LA", v0=start)[1]
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-12)


def spectral_partitions(neighbors: np.ndarray, num_clusters: int, count: int, seed: int) -> Tensor:
    """``count`` spectral clusterings ``[count, N]`` of the mined neighbor graph, one k-means seed
    each on its spectral embedding. Why: the graph's communities may be of unequal sizes, where
    k-means of the embeddings cuts nearly equal cells (folders whose classes differ in size;
    docs/clusters.md)."""
    embedding = spectral_embedding(np.asarray(neighbors), num_clusters)
    return torch.from_numpy(np.stack([
        KMeans(n_clusters=num_clusters, n_init=10, random_state=1000 * seed + index).fit_predict(embedding)
        for index in range(count)
    ])).long()


def warm_start_heads(model: ClusteringModel, images: Tensor, augment: AugmentSettings, device: torch.device,
                     initial_clusters: Tensor, steps: int = 200, lr: float = 0.05,
                     features: Tensor | None = None) -> None:
    """Fit head ``h`` to the partition ``initial_clusters[h]`` by cross-entropy on the frozen
    backbone features of the plain images (``features``, when the caller has them already); the
    backbone itself is not changed."""
    count = len(features) if features is not None else len(images)
    if initial_clusters.shape != (len(model.heads), count):
        raise ValueError(f"initial_clusters has shape {tuple(initial_clusters.shape)}, expected "
                         f"(heads={len(model.heads)}, images={count})")
    if features is None:
        features = compute_features(model.backbone, images, augment, 512, device)
    features = features.to(device)
    for head, clusters in zip(model.heads, initial_clusters.to(device)):
        optimizer = torch.optim.Adam(head.parameters(), lr=lr)
        for _ in range(steps):
            loss = F.cross_entropy(head(features), clusters)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
