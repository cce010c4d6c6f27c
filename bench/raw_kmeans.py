"""k-means on the raw pixels of a folder with class subfolders: the floor any learned
clustering of that folder has to clear (seconds, no training).

    python bench/raw_kmeans.py /work/data/colour [--size 32] [--seeds 0 1 2]

Every image is converted to RGB, resized to SIZE x SIZE and scaled to [0, 1]; k-means
(scikit-learn, n_init 10) with as many clusters as subfolders, one run per seed; ACC by the
Hungarian matching of clusters to classes, NMI and ARI as the pipeline computes them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.cluster import KMeans

from scan_core.evaluation import cluster_metrics

SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def read_folder(root: Path, size: int) -> tuple[np.ndarray, np.ndarray]:
    classes = sorted(path for path in root.iterdir() if path.is_dir() and not path.name.startswith("."))
    pixels, labels = [], []
    for label, folder in enumerate(classes):
        for file in sorted(path for path in folder.rglob("*") if path.suffix.lower() in SUFFIXES):
            with Image.open(file) as image:
                resized = image.convert("RGB").resize((size, size), Image.BILINEAR)
            pixels.append(np.asarray(resized, dtype=np.float32).ravel() / 255.0)
            labels.append(label)
    return np.stack(pixels), np.array(labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    pixels, labels = read_folder(args.root, args.size)
    num_classes = int(labels.max()) + 1
    scores = []
    for seed in args.seeds:
        clusters = KMeans(n_clusters=num_classes, n_init=10, random_state=seed).fit_predict(pixels)
        metrics = cluster_metrics(labels, clusters)
        scores.append((metrics["acc"], metrics["nmi"], metrics["ari"]))
        print(f"seed {seed}: ACC {scores[-1][0]:.3f}  NMI {scores[-1][1]:.3f}  ARI {scores[-1][2]:.3f}")
    table = np.array(scores)
    print(f"{len(labels)} images, {num_classes} classes, {args.size} px raw pixels: "
          f"ACC mean {table[:, 0].mean():.3f} min {table[:, 0].min():.3f}, "
          f"NMI mean {table[:, 1].mean():.3f} min {table[:, 1].min():.3f}")


if __name__ == "__main__":
    main()
