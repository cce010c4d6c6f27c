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


def size_penalty(mean_probs: Tensor, size_profile: Tensor | None = None) -> Tensor:
    """What SCAN's entropy weight multiplies, over the last (cluster) axis of ``mean_probs``.

    Without a profile, ``-H(mean p)``: the clusters should be equal (the paper). With
    ``size_profile`` (proportions in ascending order), ``KL(size_profile || sort(mean p))``: the
    clusters' sizes should follow the profile whichever cluster takes which size, since nothing
    tells the clusters apart before training. The profile comes first so that a cluster emptying
    out costs without bound: the other order let the two smallest of ten clusters shrink to 2 and
    13 images where 50 and 70 were asked for (docs/results.md)."""
    mean_probs = mean_probs.clamp_min(PROBABILITY_FLOOR)
    if size_profile is None:
        return (mean_probs * torch.log(mean_probs)).sum(dim=-1)
    ordered = mean_probs.sort(dim=-1).values
    profile = size_profile.to(ordered)
    return (profile * (torch.log(profile) - torch.log(ordered))).sum(dim=-1)


def scan_loss(
    anchor_logits: Tensor, neighbor_logits: Tensor, entropy_weight: float | Tensor, group: Group = SINGLE,
    size_profile: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """SCAN loss (Eq. 2): agree with your neighbor, but spread over all clusters.

    Returns ``(total, consistency, entropy)`` with
    ``consistency = -mean_i log <p(x_i), p(n_i)>``, ``entropy = H(mean_i p(x_i))`` and
    ``total = consistency - entropy_weight * entropy``; a negative total is normal. With a
    ``size_profile`` (``size_penalty``) the total is ``consistency + entropy_weight *
    KL(size_profile || sort(mean p))`` instead: clusters of the given, unequal sizes. Logits are
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
    mean_probs = group.sum(anchor_probs.sum(dim=-2)) / count
    entropy = -size_penalty(mean_probs)
    penalty = -entropy if size_profile is None else size_penalty(mean_probs, size_profile)
    return consistency + entropy_weight * penalty, consistency, entropy
