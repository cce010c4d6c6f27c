"""The pretext loss: SimCLR's NT-Xent."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def simclr_loss(features: Tensor, temperature: float) -> Tensor:
    """NT-Xent over ``features[b, 2, d]``: two views of each image are positives.

    Every view is contrasted against the other 2b - 2 views of the batch; features are
    L2-normalised here so callers may pass raw projections.
    """
    if features.ndim != 3 or features.shape[1] != 2:
        raise ValueError(f"features must be [batch, 2, dim], got {tuple(features.shape)}")
    batch = features.shape[0]
    views = F.normalize(torch.cat([features[:, 0], features[:, 1]]), dim=1)
    logits = views @ views.T / temperature
    logits = logits.masked_fill(torch.eye(2 * batch, dtype=torch.bool, device=views.device), float("-inf"))
    positives = torch.cat([torch.arange(batch, 2 * batch), torch.arange(0, batch)]).to(views.device)
    return F.cross_entropy(logits, positives)
