"""How much would knowing the class sizes help SCAN on unequal classes? Heads on a finished
run's cached backbone features, trained with SCAN's consistency term plus a size term:

- ``uniform``: the paper's ``-w * H(mean p)`` (equal sizes);
- ``sizes``: ``w * KL(sort(prior) || sort(mean p))`` (the pipeline's ``size_penalty``): the
  clusters' sizes, whichever cluster has which, should follow ``prior`` (sorting makes it blind
  to which cluster is which);
  ``prior`` is the true class proportions (an oracle, to bound what any size estimate could
  give), a rough version of it (half way to equal; each size rounded to 1, 5 or 10 times the
  smallest), or a label-free estimate: the weights of a Gaussian mixture on the embeddings
  (which, unlike k-means, may give unequal components), or the k-means partition's own sizes;
- relaxed, label-free and with no sizes given: the paper's term with its weight annealed from 5
  to 1 or 0.5 over the epochs, or each head pulled toward its own sizes of the epoch before,
  half or 0.8 of the way from equal, or only a floor under each cluster's share of a batch
  (``train_heads``' ``final_weight``, ``self_estimate`` and ``floor``).

    python bench/study/size_prior.py PROJECT [--epochs 40] [--seed 0]

PROJECT is a DVC project whose prepare, pretext, embed and mine stages have run. Prints one
JSON line per variant: ACC / NMI of the head the label-free loss keeps, mean and best over the
heads, and the sorted cluster sizes. A study, not a pipeline stage: labels are read only to score.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.study.finished_run import FinishedRun, load_finished_run  # noqa: E402
from scan_core.evaluation import cluster_metrics  # noqa: E402
from scan_core.losses.clustering import size_penalty  # noqa: E402
from scan_core.training.common import compute_features  # noqa: E402
from scan_core.training.warm_start import kmeans_partitions, spectral_partitions  # noqa: E402

FLOOR = 1e-8


def mixture_prior(embeddings: np.ndarray, clusters: int, seed: int, dims: int = 16, fits: int = 5) -> Tensor:
    """Component weights of a diagonal Gaussian mixture on ``dims`` principal components, sorted
    and averaged over ``fits`` seeds: a label-free guess at the profile of class proportions."""
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture

    reduced = PCA(dims, random_state=seed).fit_transform(embeddings)
    weights = [np.sort(GaussianMixture(clusters, covariance_type="diag", random_state=1000 * seed + fit)
                       .fit(reduced).weights_) for fit in range(fits)]
    return torch.from_numpy(np.mean(weights, axis=0)).float()


def rough_guess(proportions: Tensor) -> Tensor:
    """What a user who knows only the scale of each class might write: every proportion rounded
    to the nearest of 1, 5 and 10 times the smallest."""
    steps = torch.tensor([1.0, 5.0, 10.0]) * proportions.min()
    rounded = steps[(proportions[:, None].log() - steps.log()).abs().argmin(dim=1)]
    return rounded / rounded.sum()


def size_term(mean_probs: Tensor, prior: Tensor | None) -> Tensor:
    """The pipeline's size term (``size_penalty``) against ``prior`` in any order."""
    return size_penalty(mean_probs, None if prior is None else prior.sort().values)


def starting_partitions(run: FinishedRun, init: str, seed: int, heads: int = 10, clusters: int = 10) -> Tensor:
    """One starting partition ``[heads, N]`` per head: k-means of the embeddings (the pipeline's
    ``scan.init: kmeans``) or spectral clusterings of the mined graph (which may be unequal)."""
    if init == "spectral":
        return spectral_partitions(run.neighbors, clusters, heads, seed)
    return kmeans_partitions(run.embeddings, clusters, heads, seed)


def train_heads(features: Tensor, neighbors: Tensor, initial: Tensor, prior: Tensor | None, weight: float,
                epochs: int, seed: int, lr: float = 0.01, batch_size: int = 128, final_weight: float | None = None,
                self_estimate: float = 0.0, warm_epochs: int = 5,
                floor: float | None = None) -> tuple[Tensor, Tensor]:
    """Linear heads (one per k-means partition) on frozen features; returns every head's
    probabilities ``[H, N, C]`` after training and its final loss on all neighbor pairs.

    Label-free ways to let sizes go unequal: ``final_weight`` anneals the size term's weight
    linearly from ``weight`` (balance first, then less of it, as P²OT relaxes its marginal);
    ``self_estimate`` (0 to 1) asks each head, after ``warm_epochs`` at ``prior``, for the sizes
    it had at the end of the last epoch, that share of the way from equal: its own estimate.
    ``floor`` replaces the size term by a hinge that only stops a cluster from falling below that
    share of a batch: no pull toward equal at all above it. Whatever the training term, the final
    loss (which head to keep) uses ``size_term`` with ``prior``: the paper's entropy when none."""
    generator = torch.Generator().manual_seed(seed)
    heads, count, clusters = len(initial), len(features), int(initial.max()) + 1
    weights = torch.zeros(heads, features.shape[1], clusters, requires_grad=True)
    biases = torch.zeros(heads, 1, clusters, requires_grad=True)
    start = torch.optim.Adam([weights, biases], lr=0.05)
    for _ in range(200):
        logits = torch.einsum("nd,hdc->hnc", features, weights) + biases
        loss = F.cross_entropy(logits.reshape(-1, clusters), initial.reshape(-1))
        start.zero_grad()
        loss.backward()
        start.step()
    optimizer = torch.optim.Adam([weights, biases], lr=lr, weight_decay=1e-4)
    for epoch in range(epochs):
        if final_weight is not None:
            weight_now = weight + (final_weight - weight) * epoch / max(epochs - 1, 1)
        else:
            weight_now = weight
        if self_estimate and epoch >= warm_epochs:
            with torch.no_grad():
                sizes = (torch.einsum("nd,hdc->hnc", features, weights) + biases).softmax(-1).mean(1)
            prior = (self_estimate * sizes + (1 - self_estimate) / clusters).sort(-1).values
        for rows in torch.randperm(count, generator=generator).split(batch_size):
            picks = neighbors[rows, torch.randint(0, neighbors.shape[1], (len(rows),), generator=generator)]
            anchor = (torch.einsum("nd,hdc->hnc", features[rows], weights) + biases).softmax(-1)
            neighbor = (torch.einsum("nd,hdc->hnc", features[picks], weights) + biases).softmax(-1)
            consistency = -(anchor * neighbor).sum(-1).clamp_min(FLOOR).log().mean(-1)
            if floor is None:
                size = size_term(anchor.mean(1), prior)
            else:
                size = torch.relu(np.log(floor) - anchor.mean(1).clamp_min(FLOOR).log()).sum(-1)
            loss = (consistency + weight_now * size).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        probs = (torch.einsum("nd,hdc->hnc", features, weights) + biases).softmax(-1)
        agreement = (probs[:, :, None, :] * probs[:, neighbors, :]).sum(-1).clamp_min(FLOOR).log().mean((1, 2))
        final = -agreement + size_term(probs.mean(1), prior)
    return probs, final


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("project", type=Path)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", help="variants to run (default: all)")
    parser.add_argument("--init", choices=["kmeans", "spectral"], default="kmeans",
                        help="the heads' starting partitions: k-means of the embeddings (the pipeline's) or "
                             "spectral clustering of the mined neighbor graph, which may be unequal")
    arguments = parser.parse_args()
    root = arguments.project
    run = load_finished_run(root)
    labels, embeddings, neighbors = run.labels, run.embeddings, torch.from_numpy(run.neighbors)
    with torch.no_grad():
        features = compute_features(run.pretext.backbone, run.images, run.augment, 512, torch.device("cpu"))
    initial = starting_partitions(run, arguments.init, arguments.seed)
    true_prior = torch.from_numpy(np.bincount(labels, minlength=10) / len(labels)).float()
    print(json.dumps({"variant": arguments.init, **cluster_metrics(labels, initial[0].numpy()),
                      "sizes": sorted(np.bincount(initial[0].numpy(), minlength=10).tolist())}, default=float))
    mixture = mixture_prior(embeddings, 10, arguments.seed)
    kmeans_sizes = torch.from_numpy(np.bincount(initial[0].numpy(), minlength=10) / len(labels)).float()
    print(json.dumps({"true sizes": sorted((true_prior * len(labels)).round().int().tolist()),
                      "mixture sizes": sorted((mixture * len(labels)).round().int().tolist())}))
    uniform = torch.full((10,), 0.1)
    variants = [("uniform", None, 5.0), ("oracle-sizes", true_prior, 5.0), ("mixture-sizes", mixture, 5.0),
                ("mixture-sizes", mixture, 1.0), ("half-mixture-sizes", (mixture + uniform) / 2, 5.0),
                ("kmeans-sizes", kmeans_sizes, 5.0), ("half-oracle-sizes", (true_prior + uniform) / 2, 5.0),
                ("rough-sizes", rough_guess(true_prior), 5.0)]
    relaxed = {"annealed-5-to-1": {"final_weight": 1.0}, "annealed-5-to-0.5": {"final_weight": 0.5},
               "self-estimate-0.5": {"self_estimate": 0.5}, "self-estimate-0.8": {"self_estimate": 0.8},
               "floor-0.025": {"floor": 0.025}}
    variants += [(name, None, 5.0) for name in relaxed]
    variants.append(("no-size-term", None, 0.0))
    if arguments.only:
        variants = [variant for variant in variants if variant[0] in arguments.only]
    for name, prior, weight in variants:
        probs, final = train_heads(features, neighbors, initial, prior, weight, arguments.epochs, arguments.seed,
                                   **relaxed.get(name, {}))
        scores = [cluster_metrics(labels, head.argmax(1).numpy()) for head in probs]
        kept = int(final.argmin())
        print(json.dumps({"variant": name, "weight": weight, "kept_head": kept, **scores[kept],
                          "mean_acc": float(np.mean([s["acc"] for s in scores])),
                          "best_acc": float(np.max([s["acc"] for s in scores])),
                          "sizes": sorted(np.bincount(probs[kept].argmax(1).numpy(), minlength=10).tolist())},
                         default=float), flush=True)


if __name__ == "__main__":
    main()
