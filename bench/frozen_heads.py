"""The frozen-feature path on a finished run's pretext: SCAN heads (and self-labeling) on the
cached features of its backbone, with the pipeline's settings, scored against its labels.

    python bench/frozen_heads.py PROJECT [--epochs 100] [--lr 0.01] [--selflabel-epochs 15] [--threshold 0.999]
    python bench/frozen_heads.py PROJECT --full [--full-epochs 30]   # and full SCAN beside it

PROJECT is a DVC project whose prepare, pretext, embed and mine stages have run (for example
bench/fashion_mnist.sh's). The library is called the way tasks/scan.py and tasks/selflabel.py
call it with ``scan.update_backbone: false`` and ``scan.augmentation: none``: k-means
partitions of the embeddings start the heads, the first ``scan.num_neighbors`` mined neighbors
pair them. With ``--full`` the full SCAN of the same pretext (strong views, backbone trained,
lr 5e-4: the small_grayscale recipe) runs too, for the time and the scores side by side. Prints
ACC / NMI / ARI and the seconds of each step as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scan_core.augment.settings import AugmentSettings  # noqa: E402
from scan_core.checkpoint import TrainingCheckpoint  # noqa: E402
from scan_core.evaluation import cluster_metrics  # noqa: E402
from scan_core.mining import read_neighbor_matrix  # noqa: E402
from scan_core.model_files import load_contrastive_model  # noqa: E402
from scan_core.training.clustering import ScanSettings, heads_probabilities, train_scan  # noqa: E402
from scan_core.training.common import compute_features, predict_probabilities  # noqa: E402
from scan_core.training.selflabel import SelflabelSettings, train_selflabel  # noqa: E402
from scan_core.training.warm_start import kmeans_partitions  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("project", type=Path)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--num-neighbors", type=int, default=5)
    parser.add_argument("--head", default="linear")
    parser.add_argument("--selflabel-epochs", type=int, default=15)
    parser.add_argument("--threshold", type=float, default=0.999)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--full", action="store_true", help="also run full SCAN on the same pretext")
    parser.add_argument("--full-epochs", type=int, default=30)
    arguments = parser.parse_args()
    root = arguments.project
    info = json.loads((root / "artifacts/prepare/dataset.json").read_text())
    images = torch.from_numpy(np.load(root / "artifacts/prepare/images.npy"))
    labels = pd.read_parquet(root / "artifacts/prepare/manifest.parquet")["label"].to_numpy()
    recorded = info["recipe"]["values"]
    augment = AugmentSettings(mean=tuple(info["mean"]), std=tuple(info["std"]), hflip=True, crop_min_scale=0.4,
                              rotation=recorded["augment.rotation"], jitter_strength=recorded["augment.jitter_strength"])
    pretext, _ = load_contrastive_model(root / "artifacts/pretext/model.pt")
    anchors, neighbors = read_neighbor_matrix(root / "artifacts/mine/neighbors.parquet", arguments.num_neighbors)
    assert np.array_equal(anchors, np.arange(len(images))), "expected every image an anchor, in order"
    embeddings = np.load(root / "artifacts/embed/embeddings.npy")
    cpu, seconds = torch.device("cpu"), {}
    started = time.perf_counter()
    initial = kmeans_partitions(embeddings, 10, 10, arguments.seed)
    seconds["kmeans"] = time.perf_counter() - started
    settings = ScanSettings(num_clusters=10, num_heads=10, num_neighbors=arguments.num_neighbors,
                            epochs=arguments.epochs, batch_size=arguments.batch_size, lr=arguments.lr,
                            update_backbone=False, augmentation="none", head=arguments.head, seed=arguments.seed)
    started = time.perf_counter()
    model, history, selection = train_scan(pretext.backbone, images, torch.from_numpy(neighbors), settings, augment,
                                           TrainingCheckpoint(None, "frozen"), cpu, progress=False,
                                           initial_clusters=initial)
    seconds["scan"] = time.perf_counter() - started
    features = compute_features(model.backbone, images, augment, 512, cpu)
    scan_probabilities = heads_probabilities(model, features, cpu)[0].numpy()
    started = time.perf_counter()
    selflabel = SelflabelSettings(threshold=arguments.threshold, epochs=arguments.selflabel_epochs, batch_size=256,
                                  seed=arguments.seed, heads_on_features=True)
    model, selflabel_history = train_selflabel(model, images, selflabel, augment, TrainingCheckpoint(None, "frozen"),
                                               cpu, progress=False)
    seconds["selflabel"] = time.perf_counter() - started
    selflabel_probabilities = heads_probabilities(model, features, cpu)[0].numpy()
    full = {}
    if arguments.full:
        full_settings = ScanSettings(**{**settings.__dict__, "epochs": arguments.full_epochs, "lr": 5e-4,
                                        "update_backbone": True, "augmentation": "strong", "head": "linear"})
        pretext, _ = load_contrastive_model(root / "artifacts/pretext/model.pt")
        started = time.perf_counter()
        full_model, _, full_selection = train_scan(pretext.backbone, images, torch.from_numpy(neighbors), full_settings,
                                                   augment, TrainingCheckpoint(None, "full"), cpu, progress=False,
                                                   initial_clusters=initial)
        seconds["full scan"] = time.perf_counter() - started
        full_probabilities = predict_probabilities(full_model, images, augment, 512, cpu)[0].numpy()
        full = {"full_scan": cluster_metrics(labels, full_probabilities.argmax(1)), "full_selection": full_selection,
                "full_settings": {**full_settings.__dict__}}
    result = {"project": str(root), "images": len(images), "settings": {**settings.__dict__},
              "selection": selection, "seconds": {key: round(value, 1) for key, value in seconds.items()},
              "kmeans": cluster_metrics(labels, initial[0].numpy()),
              "scan": cluster_metrics(labels, scan_probabilities.argmax(1)),
              "selflabel": cluster_metrics(labels, selflabel_probabilities.argmax(1)),
              "selflabel_confident": [record["confident"] for record in selflabel_history], **full}
    print(json.dumps(result, indent=1, default=float))


if __name__ == "__main__":
    main()
