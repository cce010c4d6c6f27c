"""The three SCAN losses against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from scan_core.losses.clustering import PROBABILITY_FLOOR, scan_loss, size_penalty

from scan_core.losses.confidence import confidence_ce

from scan_core.losses.contrastive import simclr_loss


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _nt_xent_by_hand(features: np.ndarray, temperature: float) -> float:
    """NT-Xent written out term by term: views ordered [x_0..x_{b-1}, x'_0..x'_{b-1}]."""
    batch = features.shape[0]
    views = [features[i, 0] for i in range(batch)] + [features[i, 1] for i in range(batch)]
    views = [v / math.sqrt(sum(c * c for c in v)) for v in views]
    total = 0.0
    for i in range(2 * batch):
        positive = (i + batch) % (2 * batch)
        sims = {k: float(np.dot(views[i], views[k])) / temperature for k in range(2 * batch) if k != i}
        denominator = sum(math.exp(s) for s in sims.values())
        total += -math.log(math.exp(sims[positive]) / denominator)
    return total / (2 * batch)


@pytest.mark.parametrize("batch, dim, temperature", [(2, 3, 0.5), (3, 4, 0.1), (3, 2, 1.0)])
def test_simclr_loss_matches_hand_nt_xent(batch: int, dim: int, temperature: float) -> None:
    rng = np.random.default_rng(batch * 10 + dim)
    features = rng.normal(size=(batch, 2, dim))
    loss = simclr_loss(torch.tensor(features, dtype=torch.float64), temperature)
    assert loss.item() == pytest.approx(_nt_xent_by_hand(features, temperature), rel=1e-9)


def test_simclr_loss_is_scale_invariant_and_low_for_matching_views() -> None:
    rng = np.random.default_rng(0)
    features = torch.tensor(rng.normal(size=(3, 2, 4)))
    base = simclr_loss(features, 0.5)
    # Raw projections may be passed: each view is L2-normalised inside.
    scaled = features * torch.tensor([1.0, 7.0, 0.01]).view(3, 1, 1)
    assert simclr_loss(scaled, 0.5).item() == pytest.approx(base.item(), rel=1e-9)
    # Identical views of orthogonal images: the positive dominates, loss near its minimum.
    eye = torch.eye(3, dtype=torch.float64)
    aligned = torch.stack([eye, eye], dim=1)
    assert simclr_loss(aligned, 0.05).item() < 1e-6 < base.item()


@pytest.mark.parametrize("shape", [(4, 3), (4, 3, 2), (4, 1, 2)])
def test_simclr_loss_rejects_wrong_shape(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="batch, 2, dim"):
        simclr_loss(torch.zeros(shape), 0.5)


ANCHORS = np.array([[2.0, 0.5, -1.0], [0.0, 1.0, 0.0], [-0.5, 0.2, 1.5]])
NEIGHBORS = np.array([[1.5, 0.0, -0.5], [0.3, 0.8, -0.2], [0.0, -1.0, 2.0]])


def _scan_by_hand(anchors: np.ndarray, neighbors: np.ndarray, weight: float) -> tuple[float, float, float]:
    p, q = _softmax(anchors), _softmax(neighbors)
    consistency = -np.mean([math.log(max(sum(p[i, c] * q[i, c] for c in range(3)), 1e-8)) for i in range(3)])
    pbar = [max(sum(p[i, c] for i in range(3)) / 3, 1e-8) for c in range(3)]
    entropy = -sum(pc * math.log(pc) for pc in pbar)
    return consistency - weight * entropy, consistency, entropy


@pytest.mark.parametrize("weight", [0.0, 1.0, 5.0])
def test_scan_loss_terms_match_hand_computation(weight: float) -> None:
    total, consistency, entropy = scan_loss(
        torch.tensor(ANCHORS), torch.tensor(NEIGHBORS), entropy_weight=weight
    )
    expected_total, expected_consistency, expected_entropy = _scan_by_hand(ANCHORS, NEIGHBORS, weight)
    assert consistency.item() == pytest.approx(expected_consistency, rel=1e-9)
    assert entropy.item() == pytest.approx(expected_entropy, rel=1e-9)
    assert total.item() == pytest.approx(expected_total, rel=1e-9)
    assert total.item() == pytest.approx(consistency.item() - weight * entropy.item(), rel=1e-12)


def test_scan_loss_takes_one_entropy_weight_per_head() -> None:
    anchors, neighbors = torch.tensor(np.stack([ANCHORS, NEIGHBORS])), torch.tensor(np.stack([NEIGHBORS, ANCHORS]))
    total, _, _ = scan_loss(anchors, neighbors, entropy_weight=torch.tensor([5.0, 0.5], dtype=torch.float64))
    assert total[0].item() == pytest.approx(_scan_by_hand(ANCHORS, NEIGHBORS, 5.0)[0], rel=1e-9)
    assert total[1].item() == pytest.approx(_scan_by_hand(NEIGHBORS, ANCHORS, 0.5)[0], rel=1e-9)


def test_scan_loss_total_can_be_negative() -> None:
    # Confident anchors, each agreeing with its neighbor, spread over all three clusters:
    # consistency ~ 0 and entropy ~ log 3, so total ~ -5 log 3.
    logits = torch.eye(3, dtype=torch.float64) * 30.0
    total, consistency, entropy = scan_loss(logits, logits.clone(), entropy_weight=5.0)
    assert consistency.item() == pytest.approx(0.0, abs=1e-9)
    assert entropy.item() == pytest.approx(math.log(3), rel=1e-9)
    assert total.item() == pytest.approx(-5.0 * math.log(3), rel=1e-9)
    assert total.item() < 0


def test_scan_loss_clamps_disagreement_and_is_differentiable() -> None:
    # Anchor and neighbor certain of different clusters: <p, q> underflows to 0 and the
    # log is clamped at PROBABILITY_FLOOR instead of becoming infinite.
    anchors = torch.tensor([[1000.0, 0.0, 0.0]], requires_grad=True)
    neighbors = torch.tensor([[0.0, 1000.0, 0.0]], requires_grad=True)
    total, consistency, _ = scan_loss(anchors, neighbors, entropy_weight=1.0)
    assert consistency.item() == pytest.approx(-math.log(PROBABILITY_FLOOR), rel=1e-5)
    assert torch.isfinite(total)
    total.backward()
    assert torch.isfinite(anchors.grad).all() and torch.isfinite(neighbors.grad).all()


def test_scan_loss_gradient_reaches_anchor_and_neighbor() -> None:
    anchors = torch.tensor(ANCHORS, requires_grad=True)
    neighbors = torch.tensor(NEIGHBORS, requires_grad=True)
    scan_loss(anchors, neighbors, entropy_weight=2.0)[0].backward()
    assert anchors.grad.abs().sum() > 0 and neighbors.grad.abs().sum() > 0


def test_size_penalty_is_the_kl_of_the_profile_to_the_sorted_sizes() -> None:
    """Sizes 0.2 / 0.5 / 0.3 against the profile 0.1 / 0.3 / 0.6: sorted, 0.2 / 0.3 / 0.5 is
    compared with 0.1 / 0.3 / 0.6, whichever cluster is which."""
    mean_probs = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)
    expected = 0.1 * math.log(0.1 / 0.2) + 0.3 * math.log(0.3 / 0.3) + 0.6 * math.log(0.6 / 0.5)
    profile = torch.tensor([0.1, 0.3, 0.6], dtype=torch.float64)
    assert size_penalty(mean_probs, profile).item() == pytest.approx(expected, rel=1e-12)
    assert size_penalty(mean_probs[[1, 2, 0]], profile).item() == pytest.approx(expected, rel=1e-12)
    assert size_penalty(torch.tensor([0.6, 0.1, 0.3], dtype=torch.float64), profile).item() == pytest.approx(0.0)
    without = -(mean_probs * mean_probs.log()).sum()
    assert size_penalty(mean_probs).item() == pytest.approx(-without.item(), rel=1e-12)


def test_with_a_profile_an_emptying_cluster_costs_without_bound() -> None:
    """The paper's term changes little as one of three clusters empties out; the profile's grows
    like ``-log`` of the cluster's share, so sizes asked for keep small clusters in use."""
    equal = torch.full((3,), 1 / 3, dtype=torch.float64)
    shares = [1e-2, 1e-4, 1e-6]
    paper = [size_penalty(torch.tensor([0.5, 0.5 - share, share], dtype=torch.float64)).item() for share in shares]
    asked = [size_penalty(torch.tensor([0.5, 0.5 - share, share], dtype=torch.float64), equal).item()
             for share in shares]
    assert paper[-1] - paper[0] < 0.1
    assert asked[1] - asked[0] == pytest.approx(math.log(100) / 3, rel=0.05)
    assert asked[2] - asked[1] == pytest.approx(math.log(100) / 3, rel=0.05)


def test_scan_loss_with_a_size_profile_prefers_clusters_of_those_sizes() -> None:
    """Confident, agreeing images in clusters of 1, 1 and 4: against an equal profile the size
    term is positive, against the profile 1 / 1 / 4 (given in any order) it is zero."""
    logits = torch.eye(3, dtype=torch.float64)[[0, 1, 2, 2, 2, 2]] * 30.0
    _, consistency, _ = scan_loss(logits, logits.clone(), 1.0)
    equal, _, _ = scan_loss(logits, logits.clone(), 1.0, size_profile=torch.full((3,), 1 / 3, dtype=torch.float64))
    matching, _, _ = scan_loss(logits, logits.clone(), 1.0,
                               size_profile=torch.tensor([1 / 6, 1 / 6, 4 / 6], dtype=torch.float64))
    assert matching.item() == pytest.approx(consistency.item(), abs=1e-9)
    assert equal.item() > matching.item() + 0.1


def test_confidence_ce_without_confident_sample_is_zero_with_gradient_path() -> None:
    weak = torch.zeros(4, 3)  # uniform: max probability 1/3
    strong = torch.randn(4, 3, requires_grad=True)
    loss, count = confidence_ce(weak, strong, threshold=0.9)
    assert count == 0
    assert loss.item() == 0.0
    assert loss.grad_fn is not None
    loss.backward()
    assert strong.grad is not None and torch.equal(strong.grad, torch.zeros(4, 3))


def test_confidence_ce_threshold_is_strict() -> None:
    weak = torch.zeros(2, 2)  # max probability exactly 0.5
    loss, count = confidence_ce(weak, torch.randn(2, 2), threshold=0.5)
    assert count == 0 and loss.item() == 0.0


# Five samples, three clusters. Rows 0, 1, 4 are confidently cluster 0, row 2 confidently
# cluster 1, row 3 is unsure. Cluster 2 has no confident sample.
WEAK = torch.tensor(
    [[9.0, 0.0, 0.0], [8.0, 1.0, 0.0], [0.0, 9.0, 0.0], [1.0, 1.2, 0.9], [10.0, 0.0, 1.0]]
)
STRONG = torch.tensor(
    [[0.2, 1.0, -0.5], [1.5, 0.1, 0.3], [0.4, -0.2, 0.9], [3.0, -2.0, 0.0], [-0.3, 0.8, 0.1]]
)


def _ce_by_hand(logits: np.ndarray, target: int) -> float:
    return float(-np.log(_softmax(logits[None])[0, target]))


def test_confidence_ce_class_balanced_matches_hand_computation() -> None:
    strong = STRONG.clone().requires_grad_(True)
    loss, count = confidence_ce(WEAK, strong, threshold=0.9, class_balance=True)
    assert count == 4
    logits = STRONG.double().numpy()
    confident = {0: 0, 1: 0, 2: 1, 4: 0}  # row -> pseudo-label
    n = len(confident)
    per_class = {0: 3, 1: 1}
    weights = {row: n / per_class[label] for row, label in confident.items()}  # 4/3 and 4
    expected = sum(weights[r] * _ce_by_hand(logits[r], lab) for r, lab in confident.items()) / sum(weights.values())
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    # The rare cluster counts three times as much as each sample of the common one.
    unbalanced = np.mean([_ce_by_hand(logits[r], lab) for r, lab in confident.items()])
    assert abs(expected - unbalanced) > 1e-3
    loss.backward()
    assert torch.equal(strong.grad[3], torch.zeros(3))  # unsure row: no gradient


def test_confidence_ce_unbalanced_is_plain_mean_over_confident() -> None:
    loss, count = confidence_ce(WEAK, STRONG, threshold=0.9, class_balance=False)
    logits = STRONG.double().numpy()
    expected = np.mean([_ce_by_hand(logits[r], lab) for r, lab in {0: 0, 1: 0, 2: 1, 4: 0}.items()])
    assert count == 4
    assert loss.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("class_balance", [True, False])
def test_confidence_ce_ignores_unconfident_samples(class_balance: bool) -> None:
    changed = STRONG.clone()
    changed[3] = torch.tensor([-50.0, 20.0, 7.0])
    first, _ = confidence_ce(WEAK, STRONG, 0.9, class_balance)
    second, _ = confidence_ce(WEAK, changed, 0.9, class_balance)
    assert first.item() == second.item()
    # ...while changing a confident row does change the loss.
    changed[2] = changed[2] + torch.tensor([3.0, 0.0, 0.0])
    third, _ = confidence_ce(WEAK, changed, 0.9, class_balance)
    assert third.item() != pytest.approx(first.item())


def test_confidence_ce_leaves_out_rows_not_allowed() -> None:
    allowed = torch.tensor([True, False, True, True, True])  # row 1: confident, but not trusted
    loss, count = confidence_ce(WEAK, STRONG, threshold=0.9, class_balance=True, allowed=allowed)
    logits = STRONG.double().numpy()
    confident = {0: 0, 2: 1, 4: 0}
    weights = {0: 3 / 2, 2: 3.0, 4: 3 / 2}
    expected = sum(weights[r] * _ce_by_hand(logits[r], lab) for r, lab in confident.items()) / sum(weights.values())
    assert count == 3 and loss.item() == pytest.approx(expected, rel=1e-5)


def test_confidence_ce_does_not_backpropagate_into_weak_view() -> None:
    weak = WEAK.clone().requires_grad_(True)
    strong = STRONG.clone().requires_grad_(True)
    loss, _ = confidence_ce(weak, strong, 0.9)
    loss.backward()
    assert weak.grad is None
    assert strong.grad.abs().sum() > 0


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_confidence_ce_class_balanced_follows_logit_dtype(dtype: torch.dtype) -> None:
    loss, count = confidence_ce(WEAK, STRONG.to(dtype), threshold=0.9, class_balance=True)
    reference, _ = confidence_ce(WEAK, STRONG, threshold=0.9, class_balance=True)
    assert count == 4
    assert loss.dtype == dtype
    assert loss.item() == pytest.approx(reference.item(), rel=1e-2)
