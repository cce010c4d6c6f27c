"""The pretext loss: SimCLR's NT-Xent."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from scan_core.collectives import SINGLE, Group


def simclr_loss(features: Tensor, temperature: float, group: Group = SINGLE) -> Tensor:
    """NT-Xent over ``features[b, 2, d]``: two views of each image are positives.

    Every view is contrasted against the other 2N - 2 views of the global batch of N images;
    features are L2-normalised here so callers may pass raw projections. In several processes
    each one holds ``b`` of the N images: its views are the anchors, the gathered views of all
    processes the candidates, and the result is this process's share (``scan_core.collectives``).
    """
    if features.ndim != 3 or features.shape[1] != 2:
        raise ValueError(f"features must be [batch, 2, dim], got {tuple(features.shape)}")
    batch = features.shape[0]
    first, second = F.normalize(features[:, 0], dim=1), F.normalize(features[:, 1], dim=1)
    all_first, offset = group.gather(first)
    all_second, _ = group.gather(second)
    total = all_first.shape[0]
    own = torch.arange(offset, offset + batch, device=features.device)
    anchors = torch.cat([first, second])
    logits = anchors @ torch.cat([all_first, all_second]).T / temperature
    itself = torch.cat([own, own + total])
    logits = logits.index_put((torch.arange(2 * batch, device=features.device), itself),
                              torch.tensor(float("-inf"), dtype=logits.dtype, device=logits.device))
    positives = torch.cat([own + total, own])
    return F.cross_entropy(logits, positives, reduction="sum") * (group.world / (2 * total))
