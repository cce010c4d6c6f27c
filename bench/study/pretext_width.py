"""Does a wider small CNN give purer neighbors? SimCLR on a project's prepared images with the
project's pretext and augment params, but ``SmallConvNet(width=W)`` for each W asked; prints
neighbor purity (backbone space, as ``mine.space: backbone``), k-means ACC and seconds per epoch.
Like the pipeline it trains on the prepared training rows and scores the evaluation rows, so a
project prepared with ``data.train_split=train`` asks whether more images help; there it also
scores neighbors mined among the training rows, which SCAN would train on (denser, so perhaps
purer). Labels only score.

    python bench/study/pretext_width.py PROJECT 32,48,64 [--epochs 40]

PROJECT is a DVC project whose prepare stage has run (its params.yaml gives the rest).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
import yaml
from sklearn.cluster import KMeans

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import scan_core.training.pretext as pretext  # noqa: E402
from scan_core.checkpoint import TrainingCheckpoint  # noqa: E402
from scan_core.evaluation import cluster_metrics  # noqa: E402
from scan_core.mining import mine_neighbors, neighbor_purity  # noqa: E402
from scan_core.models import SmallConvNet  # noqa: E402
from scan_core.training.common import compute_features  # noqa: E402
from tasks.compute import augment_settings  # noqa: E402


def study(root: Path, widths: list[int], epochs: int) -> list[dict]:
    info = json.loads((root / "artifacts/prepare/dataset.json").read_text())
    params = yaml.safe_load((root / "params.yaml").read_text())
    images = torch.from_numpy(np.load(root / "artifacts/prepare/images.npy"))
    manifest = pd.read_parquet(root / "artifacts/prepare/manifest.parquet")
    train, evaluate = manifest["in_train"].to_numpy(), manifest["in_eval"].to_numpy()
    labels, train_labels = manifest["label"].to_numpy()[evaluate], manifest["label"].to_numpy()[train]
    score_train_rows = not np.array_equal(train, evaluate)
    train_images, eval_images = images[torch.from_numpy(train)], images[torch.from_numpy(evaluate)]
    augment = augment_settings("pretext", info, params["augment"], logging.getLogger("study"), "small_cnn")
    values = params["pretext"]
    settings = pretext.PretextSettings(backbone="small_cnn", epochs=epochs, batch_size=256, lr=values["lr"],
                                       weight_decay=values["weight_decay"], temperature=values["temperature"],
                                       projection_dim=values["projection_dim"], seed=values["seed"])
    rows = []
    for width in widths:
        pretext.build_backbone = lambda name, channels, width=width: SmallConvNet(channels, width)
        start = time.time()
        model, _ = pretext.train_pretext(train_images, settings, augment, TrainingCheckpoint(None, "study"),
                                         torch.device("cpu"))
        seconds = (time.time() - start) / epochs
        features = F.normalize(compute_features(model.backbone, eval_images, augment, 512, torch.device("cpu")), dim=1)
        purity = neighbor_purity(mine_neighbors(features.numpy(), 20), labels, [1, 5, 20])
        kmeans = KMeans(len(set(labels)), n_init=10, random_state=0).fit_predict(features.numpy())
        rows.append({"width": width, "epochs": epochs, "train_images": int(train.sum()),
                     "seconds_per_epoch": round(seconds, 1),
                     "purity": {k: round(v, 4) for k, v in purity.items()},
                     "kmeans_acc": round(cluster_metrics(labels, kmeans)["acc"], 4)})
        if score_train_rows:
            train_features = F.normalize(compute_features(model.backbone, train_images, augment, 512,
                                                          torch.device("cpu")), dim=1)
            train_purity = neighbor_purity(mine_neighbors(train_features.numpy(), 20), train_labels, [1, 5, 20])
            rows[-1]["purity_among_training_rows"] = {k: round(v, 4) for k, v in train_purity.items()}
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("project", type=Path)
    parser.add_argument("widths", help="comma-separated SmallConvNet widths (32 is the pipeline's)")
    parser.add_argument("--epochs", type=int, default=40)
    args = parser.parse_args()
    study(args.project, [int(width) for width in args.widths.split(",")], args.epochs)


if __name__ == "__main__":
    main()
