"""The SCAN loss: neighbors agree, clusters stay in use."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from scan_core.collectives import SINGLE, Group

PROBABILITY_FLOOR = 1e-8


def scan_loss(
    anchor_logits: Tensor, neighbor_logits: Tensor, entropy_weight: float, group: Group = SINGLE
) -> tuple[Tensor, Tensor, Tensor]:
    """SCAN loss (Eq. 2): agree with your neighbor, but spread over all clusters.

    Returns ``(total, consistency, entropy)`` with
    ``consistency = -mean_i log <p(x_i), p(n_i)>``, ``entropy = H(mean_i p(x_i))`` and
    ``total = consistency - entropy_weight * entropy``; a negative total is normal. In several
    processes the mean probability is that of the global batch and ``consistency`` is this
    process's share, so the mean over processes of each value is the global one.
    """
    anchor_probs = F.softmax(anchor_logits, dim=1)
    neighbor_probs = F.softmax(neighbor_logits, dim=1)
    agreement = (anchor_probs * neighbor_probs).sum(dim=1)
    count = group.total(anchor_probs.new_tensor(float(len(anchor_probs))))
    consistency = -torch.log(agreement.clamp_min(PROBABILITY_FLOOR)).sum() * (group.world / count)
    mean_probs = (group.sum(anchor_probs.sum(dim=0)) / count).clamp_min(PROBABILITY_FLOOR)
    entropy = -(mean_probs * torch.log(mean_probs)).sum()
    return consistency - entropy_weight * entropy, consistency, entropy
