"""The self-labeling loss: cross-entropy against confident predictions."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from scan_core.collectives import SINGLE, Group


def confidence_ce(
    weak_logits: Tensor, strong_logits: Tensor, threshold: float, class_balance: bool = True,
    group: Group = SINGLE, allowed: Tensor | None = None,
) -> tuple[Tensor, int]:
    """Self-labeling loss: cross-entropy on the strong view against confident weak argmaxes.

    Only samples whose weak-view max probability exceeds ``threshold`` count. With
    ``class_balance`` each pseudo-class c is weighted n / count_c (n confident samples),
    so rare clusters are not swamped; ``allowed`` (bool per sample) leaves out samples a caller
    does not trust whatever their confidence; the weighted sum is divided by the sum of the weights,
    as ``F.cross_entropy`` does. With no confident sample the loss is a zero that still
    carries a gradient path, so a training loop never needs a special case. In several
    processes counts and the weight sum are those of the global batch, the loss is this
    process's share and the count returned is global.
    """
    with torch.no_grad():
        weak_probs = F.softmax(weak_logits.detach(), dim=1)
        confidence, pseudo_labels = weak_probs.max(dim=1)
        confident = confidence > threshold
        if allowed is not None:
            confident &= allowed.to(confident.device)
    num_classes = strong_logits.shape[1]
    targets = pseudo_labels[confident]
    per_class = group.total(torch.bincount(targets, minlength=num_classes).to(strong_logits.dtype))
    count = int(per_class.sum())
    if count == 0:
        return strong_logits.sum() * 0.0, 0
    weight = torch.ones(num_classes, device=strong_logits.device, dtype=strong_logits.dtype)
    if class_balance:
        present = per_class > 0
        weight = torch.zeros_like(weight)
        weight[present] = count / per_class[present]
    terms = F.cross_entropy(strong_logits[confident], targets, reduction="none")
    weighted = (weight[targets] * terms).sum() + strong_logits.sum() * 0.0  # a path even with no local row
    return weighted * (group.world / (weight * per_class).sum()), count
