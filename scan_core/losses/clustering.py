"""The SCAN loss: neighbors agree, clusters stay in use."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from scan_core.collectives import SINGLE, Group

PROBABILITY_FLOOR = 1e-8


def class_softmax(logits: Tensor) -> Tensor:
    """Softmax over the last (class) axis, computed along a transposed view: PyTorch's CPU kernel
    along a short last axis (10 clusters) takes about five times as long, forward and backward,
    as along an inner one, and on cached features this is most of a SCAN step."""
    return F.softmax(logits.transpose(-1, -2), dim=-2).transpose(-1, -2)


def scan_loss(
    anchor_logits: Tensor, neighbor_logits: Tensor, entropy_weight: float, group: Group = SINGLE
) -> tuple[Tensor, Tensor, Tensor]:
    """SCAN loss (Eq. 2): agree with your neighbor, but spread over all clusters.

    Returns ``(total, consistency, entropy)`` with
    ``consistency = -mean_i log <p(x_i), p(n_i)>``, ``entropy = H(mean_i p(x_i))`` and
    ``total = consistency - entropy_weight * entropy``; a negative total is normal. Logits are
    ``[B, C]``, or ``[heads, B, C]`` for every head at once (each value then ``[heads]``: one
    call instead of one per head, which is most of a step's time on cached features). In several
    processes the mean probability is that of the global batch and ``consistency`` is this
    process's share, so the mean over processes of each value is the global one.
    """
    anchor_probs = class_softmax(anchor_logits)
    neighbor_probs = class_softmax(neighbor_logits)
    agreement = (anchor_probs * neighbor_probs).sum(dim=-1)
    count = group.total(anchor_probs.new_tensor(float(anchor_probs.shape[-2])))
    consistency = -torch.log(agreement.clamp_min(PROBABILITY_FLOOR)).sum(dim=-1) * (group.world / count)
    mean_probs = (group.sum(anchor_probs.sum(dim=-2)) / count).clamp_min(PROBABILITY_FLOOR)
    entropy = -(mean_probs * torch.log(mean_probs)).sum(dim=-1)
    return consistency - entropy_weight * entropy, consistency, entropy
