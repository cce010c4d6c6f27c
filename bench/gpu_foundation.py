"""A frozen foundation backbone with SCAN heads on its cached features, timed on one device:
Fashion-MNIST's test split through the backbone once, neighbors mined on its features, heads
trained on them. Calls ``scan_core`` directly (no prefect, dvc, faiss or pydantic needed).

    python bench/gpu_foundation.py --data bench/.data/fashion-mnist \\
        [--backbone timm/vit_small_patch14_dinov2.lvd142m] [--weights FILE] [--images 10000] [--device auto]

Without ``--weights`` the backbone has random weights: the times are real, the ACC is not
a result (said in the output). With a weights file that travelled (a state dict, as
``scan cluster --weights`` takes) the ACC is the model's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scan_core.augment.settings import AugmentSettings  # noqa: E402
from scan_core.checkpoint import TrainingCheckpoint  # noqa: E402
from scan_core.data.readers.idx import read_fashion_mnist  # noqa: E402
from scan_core.devices import resolve_device  # noqa: E402
from scan_core.evaluation import cluster_metrics  # noqa: E402
from scan_core.foundation import FoundationBackbone, load_foundation  # noqa: E402
from scan_core.mining import search_neighbors  # noqa: E402
from scan_core.training.clustering import ScanSettings, heads_probabilities, train_scan  # noqa: E402
from scan_core.training.common import compute_features  # noqa: E402
from scan_core.training.warm_start import kmeans_partitions  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu import Clock  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("bench/.data/fashion-mnist"))
    parser.add_argument("--backbone", default="timm/vit_small_patch14_dinov2.lvd142m")
    parser.add_argument("--weights", type=Path, default=None, help="a state dict; random weights without it")
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--head", default="mlp", choices=("linear", "mlp"))
    parser.add_argument("--batch-size", type=int, default=256, help="backbone batch")
    arguments = parser.parse_args()

    device = resolve_device(arguments.device)
    data = read_fashion_mnist(arguments.data, "test")
    images, labels = data.images[: arguments.images], data.labels[: arguments.images]
    store = torch.from_numpy(images)
    backbone = (load_foundation(arguments.backbone, arguments.weights) if arguments.weights
                else FoundationBackbone(arguments.backbone)).to(device)
    clock = Clock(device)
    print(f"device {device}, {len(images)} images, {arguments.backbone} ({'weights ' + str(arguments.weights) if arguments.weights else 'RANDOM weights: times only'}), "
          f"{backbone.preprocessing.describe(images.shape[1])}", flush=True)
    pixels_as_is = AugmentSettings(mean=(0.0,), std=(1.0,))  # the backbone normalises with its own statistics
    with clock("embed"), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        features = compute_features(backbone, store, pixels_as_is, arguments.batch_size, device).float()
    normalised = F.normalize(features, dim=1).numpy()
    with clock("mine"):
        mined = search_neighbors(normalised, 20, device=device)
    neighbors = torch.from_numpy(mined.neighbors).long()
    purity = float((labels[neighbors[:, :5].numpy()] == labels[:, None]).mean())
    with clock("kmeans"):
        initial = kmeans_partitions(normalised, 10, 10, seed=0)
    kmeans_metrics = cluster_metrics(labels, initial[0].numpy())
    settings = ScanSettings(num_clusters=10, num_heads=10, num_neighbors=5, entropy_weight=5.0,
                            epochs=arguments.epochs, batch_size=1024, lr=1e-2, update_backbone=False,
                            augmentation="none", head=arguments.head, seed=0)
    epoch_ends: list[float] = []
    with clock("scan heads"):
        started = time.perf_counter()
        heads, history, selection = train_scan(backbone, store, neighbors[:, :5], settings, pixels_as_is,
                                               TrainingCheckpoint(None, "gpu-foundation"), device, progress=False,
                                               initial_clusters=initial, features=features,
                                               on_epoch=lambda epoch, record: epoch_ends.append(time.perf_counter()))
    epoch_seconds = [later - earlier for earlier, later in zip([started, *epoch_ends], epoch_ends)][1:]
    probabilities = heads_probabilities(heads, features, device)[0].numpy()
    metrics = cluster_metrics(labels, probabilities.argmax(1), probabilities)
    summary = {"device": str(device), "backbone": arguments.backbone, "random_weights": arguments.weights is None,
               "images": len(images), "feature_dim": int(features.shape[1]), "head": arguments.head,
               "seconds": {stage: round(seconds, 2) for stage, seconds in clock.seconds.items()},
               "embed_images_per_s": round(len(images) / clock.seconds["embed"], 1),
               "median_scan_epoch_s": round(sorted(epoch_seconds)[len(epoch_seconds) // 2], 4) if epoch_seconds else None,
               "neighbor_purity_top5": round(purity, 4), "kmeans_acc": round(kmeans_metrics["acc"], 4),
               "scan_acc": round(metrics["acc"], 4), "scan_nmi": round(metrics["nmi"], 4), "selection": selection}
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
