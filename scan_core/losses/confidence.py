"""The self-labeling loss: cross-entropy against confident predictions."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def confidence_ce(
    weak_logits: Tensor, strong_logits: Tensor, threshold: float, class_balance: bool = True
) -> tuple[Tensor, int]:
    """Self-labeling loss: cross-entropy on the strong view against confident weak argmaxes.

    Only samples whose weak-view max probability exceeds ``threshold`` count. With
    ``class_balance`` each pseudo-class c is weighted n / count_c (n confident samples),
    so rare clusters are not swamped. With no confident sample the loss is a zero that
    still carries a gradient path, so a training loop never needs a special case.
    """
    with torch.no_grad():
        weak_probs = F.softmax(weak_logits.detach(), dim=1)
        confidence, pseudo_labels = weak_probs.max(dim=1)
        confident = confidence > threshold
    count = int(confident.sum())
    if count == 0:
        return strong_logits.sum() * 0.0, 0
    targets = pseudo_labels[confident]
    weight = None
    if class_balance:
        num_classes = strong_logits.shape[1]
        per_class = torch.bincount(targets, minlength=num_classes).to(strong_logits.dtype)
        weight = torch.zeros(num_classes, device=strong_logits.device, dtype=strong_logits.dtype)
        present = per_class > 0
        weight[present] = count / per_class[present]
    return F.cross_entropy(strong_logits[confident], targets, weight=weight), count
