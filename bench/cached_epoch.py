"""Time SCAN epochs of heads on cached features (a frozen backbone's), no image involved.

    python bench/cached_epoch.py [--images 100000] [--dim 384] [--epochs 5] [--head linear]

The features are a mixture of ``--clusters`` Gaussian blobs on the unit sphere (what a
foundation model's L2-normalised embeddings of that many classes look like to the heads), the
neighbors their exact top-5 by cosine similarity (faiss). Reported: seconds per epoch, the
optimiser steps and the label-free selection pass after each epoch included, without the
one-off k-means warm start.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F
from torch import nn

from scan_core.augment.settings import AugmentSettings
from scan_core.mining import search_neighbors
from scan_core.training.clustering import ScanSettings, train_scan


class NullCheckpoint:
    """No resume and no writes: the timing is the training's alone."""

    def load(self):
        return None

    def save(self, state) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--clusters", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--head", default="linear")
    parser.add_argument("--batch-size", type=int, default=1024)
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(0)
    centres = F.normalize(torch.randn(args.clusters, args.dim, generator=generator), dim=1)
    labels = torch.randint(0, args.clusters, (args.images,), generator=generator)
    features = F.normalize(centres[labels] + 0.08 * torch.randn(args.images, args.dim, generator=generator), dim=1)
    started = time.perf_counter()
    neighbors = torch.from_numpy(search_neighbors(features.numpy(), 5).neighbors).long()
    mining_s = time.perf_counter() - started
    backbone = nn.Identity()
    backbone.output_dim = args.dim
    settings = ScanSettings(num_clusters=args.clusters, epochs=args.epochs, batch_size=args.batch_size, lr=1e-2,
                            update_backbone=False, augmentation="none", head=args.head,
                            init="random")  # the timing is the epochs', not the one-off k-means start
    epoch_ends: list[float] = []
    started = time.perf_counter()
    _, history, selection = train_scan(backbone, None, neighbors, settings, AugmentSettings(mean=(0.0,), std=(1.0,)), NullCheckpoint(),
                                       torch.device("cpu"), on_epoch=lambda epoch, record: epoch_ends.append(
                                           time.perf_counter()), progress=False, features=features)
    steps = [later - earlier for earlier, later in zip([started, *epoch_ends], epoch_ends)]
    print(json.dumps({"images": args.images, "dim": args.dim, "head": args.head, "batch_size": args.batch_size,
                      "threads": torch.get_num_threads(), "mining_s": round(mining_s, 2),
                      "first_epoch_s": round(steps[0], 3), "later_epochs_s": [round(step, 3) for step in steps[1:]],
                      "median_epoch_s": round(sorted(steps[1:])[len(steps[1:]) // 2], 3) if len(steps) > 1 else None,
                      "neighbor_agreement": history[-1]["neighbor_agreement"], "kept": selection}, indent=1))


if __name__ == "__main__":
    main()
