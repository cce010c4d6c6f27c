"""SCAN end to end on one GPU in minutes: Fashion-MNIST's test split through pretext, mine,
scan and self-labeling with ``resnet18_cifar``, calling ``scan_core`` directly; then the
frozen-feature path on the same pretext (heads only, on the backbone's cached features) beside it.

Made for a bare GPU machine (torch, torchvision, numpy, pandas, pyarrow, scipy, scikit-learn;
no prefect, dvc, faiss or pydantic, no network): nothing here imports them, and mining runs
in torch on the GPU. Epochs are sized from a timed first pretext epoch so the whole run fits
``--budget`` seconds. Prints images/s per stage, the total time and ACC.

    python bench/gpu.py --data bench/.data/fashion-mnist [--budget 300] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scan_core.augment.settings import AugmentSettings  # noqa: E402
from scan_core.checkpoint import TrainingCheckpoint  # noqa: E402
from scan_core.data.readers.idx import read_fashion_mnist  # noqa: E402
from scan_core.devices import resolve_device  # noqa: E402
from scan_core.evaluation import cluster_metrics  # noqa: E402
from scan_core.mining import search_neighbors  # noqa: E402
from scan_core.training.clustering import ScanSettings, heads_probabilities, train_scan  # noqa: E402
from scan_core.training.common import compute_features, predict_probabilities  # noqa: E402
from scan_core.training.pretext import PretextSettings, train_pretext  # noqa: E402
from scan_core.training.selflabel import SelflabelSettings, train_selflabel  # noqa: E402
from scan_core.training.warm_start import kmeans_partitions  # noqa: E402

# Shares of the budget; what is left covers embedding, mining, k-means and the timing epoch.
PRETEXT_SHARE, SCAN_SHARE, SELFLABEL_SHARE = 0.55, 0.2, 0.1


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Clock:
    """Wall time per stage, with the device drained at both ends."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.seconds = device, {}

    def __call__(self, stage: str):
        clock = self

        class Timed:
            def __enter__(self) -> None:
                sync(clock.device)
                self.started = time.perf_counter()

            def __exit__(self, *exc: object) -> None:
                sync(clock.device)
                clock.seconds[stage] = clock.seconds.get(stage, 0.0) + time.perf_counter() - self.started

        return Timed()


def epochs_for(seconds: float, per_epoch: float, lowest: int, highest: int) -> int:
    return int(min(highest, max(lowest, seconds // max(per_epoch, 1e-6))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("bench/.data/fashion-mnist"))
    parser.add_argument("--budget", type=float, default=300.0, help="seconds for the whole run")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--images", type=int, default=10_000, help="use the first N test images")
    parser.add_argument("--backbone", default="resnet18_cifar")
    parser.add_argument("--max-pretext-epochs", type=int, default=200)
    arguments = parser.parse_args()

    device = resolve_device(arguments.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    started = time.perf_counter()
    data = read_fashion_mnist(arguments.data, "test")
    images, labels = data.images[: arguments.images], data.labels[: arguments.images]
    count = len(images)
    pixels = images.astype(np.float64) / 255.0
    augment = AugmentSettings(mean=tuple(map(float, pixels.mean(axis=(0, 1, 2)))),
                              std=tuple(map(float, pixels.std(axis=(0, 1, 2)))),
                              hflip=True, crop_min_scale=0.4, rotation=0.0, strong_ops=2, cutout_fraction=0.25)
    store = torch.from_numpy(images)
    none = TrainingCheckpoint(None, "gpu-bench")
    clock = Clock(device)
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}), "
          f"{count} Fashion-MNIST test images {images.shape[1]}x{images.shape[2]}, backbone {arguments.backbone}, "
          f"budget {arguments.budget:.0f} s", flush=True)

    pretext = PretextSettings(backbone=arguments.backbone, epochs=1, batch_size=512, lr=0.4, temperature=0.5, seed=0)
    with clock("timing epoch"):
        train_pretext(store, pretext, augment, none, device, progress=False)
    per_epoch = clock.seconds["timing epoch"]
    pretext_epochs = epochs_for(PRETEXT_SHARE * arguments.budget, per_epoch, 1, arguments.max_pretext_epochs)
    pretext = PretextSettings(**{**pretext.__dict__, "epochs": pretext_epochs})
    with clock("pretext"):
        model, history = train_pretext(store, pretext, augment, none, device, progress=False)
    backbone = model.backbone

    with clock("embed"):
        features = compute_features(backbone, store, augment, 1024, device).numpy()
    with clock("mine"):
        mined = search_neighbors(features, 20, device=device)
    neighbors = torch.from_numpy(np.searchsorted(mined.ids, mined.neighbors)).long()
    purity = float((labels[neighbors[:, :5].numpy()] == labels[:, None]).mean())
    num_heads = 5
    with clock("kmeans"):
        initial = kmeans_partitions(features, 10, num_heads, seed=0)

    # One SCAN epoch sees 2 strong views per image, one self-labeling epoch 1 (+1 plain pass).
    scan_epochs = epochs_for(SCAN_SHARE * arguments.budget, per_epoch * 1.2, 5, 100)
    scan = ScanSettings(num_clusters=10, num_heads=num_heads, num_neighbors=5, entropy_weight=5.0, epochs=scan_epochs,
                        batch_size=256, lr=5e-4, init="kmeans", seed=0)
    with clock("scan"):
        clustering, scan_history, selection = train_scan(backbone, store, neighbors[:, :5], scan, augment, none,
                                                         device, progress=False, initial_clusters=initial)
    scan_probabilities = predict_probabilities(clustering, store, augment, 1024, device)[0].numpy()

    selflabel_epochs = epochs_for(SELFLABEL_SHARE * arguments.budget, per_epoch * 0.8, 2, 50)
    selflabel = SelflabelSettings(threshold=0.99, epochs=selflabel_epochs, batch_size=512, lr=1e-4, seed=0)
    with clock("selflabel"):
        final, _ = train_selflabel(clustering, store, selflabel, augment, none, device, progress=False)
    probabilities = predict_probabilities(final, store, augment, 1024, device)[0].numpy()

    # The frozen-feature path on the same pretext: heads only, on the backbone's cached features.
    frozen = ScanSettings(**{**scan.__dict__, "epochs": 100, "lr": 1e-2, "update_backbone": False,
                             "augmentation": "none"})
    with clock("scan frozen"):
        cached = compute_features(backbone, store, augment, 1024, device)
        heads, frozen_history, _ = train_scan(backbone, store, neighbors[:, :5], frozen, augment, none, device,
                                              progress=False, initial_clusters=initial, features=cached)
    frozen_probabilities = heads_probabilities(heads, cached, device)[0].numpy()
    total = time.perf_counter() - started

    seen = {"timing epoch": 2 * count, "pretext": 2 * count * pretext_epochs, "embed": count, "mine": count,
            "kmeans": count * num_heads, "scan": 2 * count * len(scan_history), "selflabel": count * selflabel_epochs,
            "scan frozen": 2 * count * len(frozen_history)}
    print(f"{'stage':<13}{'epochs':>7}{'seconds':>9}{'images/s':>11}")
    epochs = {"pretext": pretext_epochs, "scan": len(scan_history), "selflabel": selflabel_epochs, "timing epoch": 1,
              "scan frozen": len(frozen_history)}
    for stage, seconds in clock.seconds.items():
        print(f"{stage:<13}{epochs.get(stage, ''):>7}{seconds:>9.1f}{seen[stage] / seconds:>11.0f}")
    scan_metrics = cluster_metrics(labels, scan_probabilities.argmax(1), scan_probabilities)
    final_metrics = cluster_metrics(labels, probabilities.argmax(1), probabilities)
    frozen_metrics = cluster_metrics(labels, frozen_probabilities.argmax(1), frozen_probabilities)
    summary = {"device": str(device), "images": count, "total_seconds": round(total, 1),
               "pretext_final_loss": round(history[-1]["loss"], 4), "neighbor_purity_top5": round(purity, 4),
               "mining": f"{mined.index} on {mined.backend}", "scan_selection": selection,
               "scan_acc": round(scan_metrics["acc"], 4), "selflabel_acc": round(final_metrics["acc"], 4),
               "selflabel_nmi": round(final_metrics["nmi"], 4), "scan_frozen_acc": round(frozen_metrics["acc"], 4),
               "scan_frozen_nmi": round(frozen_metrics["nmi"], 4),
               "scan_seconds": round(clock.seconds["scan"], 1), "scan_frozen_seconds": round(clock.seconds["scan frozen"], 1)}
    print(json.dumps(summary, indent=1))
    print(f"total {total:.1f} s, ACC {final_metrics['acc']:.4f} (SCAN {scan_metrics['acc']:.4f})")


if __name__ == "__main__":
    main()
