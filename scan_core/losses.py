"""The three losses of SCAN: SimCLR (pretext), the SCAN loss (clustering) and the
confidence-thresholded cross-entropy (self-labeling)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

PROBABILITY_FLOOR = 1e-8


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


def scan_loss(
    anchor_logits: Tensor, neighbor_logits: Tensor, entropy_weight: float
) -> tuple[Tensor, Tensor, Tensor]:
    """SCAN loss (Eq. 2): agree with your neighbor, but spread over all clusters.

    Returns ``(total, consistency, entropy)`` with
    ``consistency = -mean_i log <p(x_i), p(n_i)>``, ``entropy = H(mean_i p(x_i))`` and
    ``total = consistency - entropy_weight * entropy``; a negative total is normal.
    """
    anchor_probs = F.softmax(anchor_logits, dim=1)
    neighbor_probs = F.softmax(neighbor_logits, dim=1)
    agreement = (anchor_probs * neighbor_probs).sum(dim=1)
    consistency = -torch.log(agreement.clamp_min(PROBABILITY_FLOOR)).mean()
    mean_probs = anchor_probs.mean(dim=0).clamp_min(PROBABILITY_FLOOR)
    entropy = -(mean_probs * torch.log(mean_probs)).sum()
    return consistency - entropy_weight * entropy, consistency, entropy


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
