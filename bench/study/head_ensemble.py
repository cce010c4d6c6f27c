"""Is the average of SCAN's heads a better teacher than the one head SCAN keeps?

SCAN trains ten heads from ten k-means partitions and keeps one. Each head here trains alone on
a finished run's cached backbone features (heads only, ``scan.augmentation: none``), from its own
partition; every head's clusters are matched to the kept head's (the one with the lowest SCAN
loss at weight 1, the pipeline's rule) and their probabilities averaged. Printed, scored
against the labels the run has: each head, the kept head, the average, and the pseudo-labels
each would hand to self-labeling (share right, share of images).

    python bench/study/head_ensemble.py PROJECT [--epochs 40] [--heads 10] [--seed 0]

PROJECT is a DVC project whose prepare, pretext, embed and mine stages have run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from scipy.optimize import linear_sum_assignment

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.study.finished_run import load_finished_run  # noqa: E402
from scan_core.checkpoint import TrainingCheckpoint  # noqa: E402
from scan_core.evaluation import cluster_metrics, contingency, pseudo_label_report  # noqa: E402
from scan_core.training.clustering import ScanSettings, head_losses, heads_probabilities, train_scan  # noqa: E402
from scan_core.training.common import compute_features  # noqa: E402
from scan_core.training.warm_start import kmeans_partitions  # noqa: E402


def aligned(probabilities: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``probabilities`` ``[N, K]`` with its columns reordered to best match ``reference``'s clusters."""
    num_clusters = probabilities.shape[1]
    overlap = contingency(probabilities.argmax(1).numpy(), reference.argmax(1).numpy(), num_clusters, num_clusters)
    _, columns = linear_sum_assignment(overlap, maximize=True)  # overlap[reference cluster, this head's]
    return probabilities[:, torch.from_numpy(columns)]


def study(root: Path, epochs: int, num_heads: int, seed: int, num_clusters: int = 10) -> list[dict]:
    run = load_finished_run(root)
    cpu = torch.device("cpu")
    features = compute_features(run.pretext.backbone, run.images, run.augment, 512, cpu)
    neighbors = torch.from_numpy(run.neighbors)
    partitions = kmeans_partitions(run.embeddings, num_clusters, num_heads, seed)
    heads = []
    for head in range(num_heads):
        settings = ScanSettings(num_clusters=num_clusters, num_heads=1, entropy_weight=5.0, epochs=epochs,
                                batch_size=128, lr=0.01, update_backbone=False, augmentation="none", seed=seed + head)
        model, _, _ = train_scan(run.pretext.backbone, run.images, neighbors, settings, run.augment,
                                 TrainingCheckpoint(None, "study"), cpu, progress=False,
                                 initial_clusters=partitions[head:head + 1], features=features)
        heads.append(heads_probabilities(model, features, cpu)[0])
    kept = int(head_losses(torch.stack(heads), neighbors).argmin())
    average = torch.stack([aligned(probabilities, heads[kept]) for probabilities in heads]).mean(0)
    rows = []
    for name, probabilities in [*((f"head{h}", p) for h, p in enumerate(heads)), ("kept", heads[kept]),
                                ("average", average)]:
        row = {"project": root.name, "seed": seed, "model": name,
               **cluster_metrics(run.labels, probabilities.argmax(1).numpy())}
        if name in ("kept", "average"):
            for threshold in (0.9, 0.99, 0.999):
                report = pseudo_label_report(run.labels, probabilities.numpy(), threshold)
                share = float((probabilities.max(1).values > threshold).float().mean())
                row[f"pseudo@{threshold}"] = {"right": report["pseudo_label_accuracy"], "share": share}
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("project", type=Path)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--heads", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clusters", type=int, default=10)
    arguments = parser.parse_args()
    for row in study(arguments.project, arguments.epochs, arguments.heads, arguments.seed, arguments.clusters):
        print(json.dumps(row, default=float), flush=True)


if __name__ == "__main__":
    main()
