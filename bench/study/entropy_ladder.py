"""Which entropy weight, chosen how: SCAN heads on a finished run's cached backbone features,
every head at one weight (the paper's 5) or each at its own (``entropy_weight_ladder``),
the head and epoch kept by each label-free selection (modularity, the authors' SCAN loss with
weight 1), scored against the labels the run has.

    python bench/study/entropy_ladder.py PROJECT [PROJECT ...] [--epochs 60] [--seeds 0 1 2]

PROJECT is a DVC project whose prepare, pretext, embed and mine stages have run (``scan
cluster`` on a folder with class subfolders, or bench/fashion_mnist.sh). The heads train on the
frozen backbone (``scan.augmentation: none``), a fraction of a full SCAN run's time; what it
says about the selection is checked on full runs afterwards. Prints one JSON line per run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.study.finished_run import load_finished_run  # noqa: E402
from scan_core.checkpoint import TrainingCheckpoint  # noqa: E402
from scan_core.evaluation import cluster_metrics  # noqa: E402
from scan_core.defaults import entropy_weight_ladder  # noqa: E402
from scan_core.training.clustering import ScanSettings, heads_probabilities, train_scan  # noqa: E402
from scan_core.training.common import compute_features  # noqa: E402
from scan_core.training.warm_start import kmeans_partitions  # noqa: E402


def study(root: Path, epochs: int, seed: int) -> list[dict]:
    run = load_finished_run(root)
    images, labels, augment, neighbors, embeddings = run.images, run.labels, run.augment, run.neighbors, run.embeddings
    cpu = torch.device("cpu")
    features = compute_features(run.pretext.backbone, images, augment, 512, cpu)
    initial = kmeans_partitions(embeddings, 10, 10, seed)
    rows = [{"project": root.name, "seed": seed, "model": "kmeans", **cluster_metrics(labels, initial[0].numpy())}]
    for weights in (5.0, entropy_weight_ladder(10)):
        for selection in ("scan_loss", "modularity"):
            settings = ScanSettings(num_clusters=10, num_heads=10, entropy_weight=weights, epochs=epochs,
                                    batch_size=128, lr=0.01, update_backbone=False, augmentation="none",
                                    selection=selection, seed=seed)
            model, _, chosen = train_scan(run.pretext.backbone, images, torch.from_numpy(neighbors), settings, augment,
                                          TrainingCheckpoint(None, "study"), cpu, progress=False,
                                          initial_clusters=initial, features=features)
            clusters = heads_probabilities(model, features, cpu)[0].argmax(1).numpy()
            rows.append({"project": root.name, "seed": seed, "model": "scan",
                         "weights": "5" if weights == 5.0 else "ladder", "selection": selection,
                         "chosen": chosen, "sizes": sorted(np.bincount(clusters, minlength=10).tolist()),
                         **cluster_metrics(labels, clusters)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("projects", type=Path, nargs="+")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    arguments = parser.parse_args()
    for root in arguments.projects:
        for seed in arguments.seeds:
            for row in study(root, arguments.epochs, seed):
                print(json.dumps(row, default=float), flush=True)


if __name__ == "__main__":
    main()
