"""How far is SCAN from what its features allow? On a finished run, with labels (a study:
they only score), three numbers beside SCAN's ACC:

- a linear probe: logistic regression on the pretext backbone's features of the training rows,
  scored on the evaluation rows (5-fold cross-validated where they are the same rows): what a
  supervised reader of the same features gets; each class's recall shows which classes the
  features do not separate;
- spectral clustering of the mined neighbor graph (K = 5 and 20, symmetrised, normalised
  adjacency): whether the graph SCAN learns from holds the classes as communities;
- the neighbors' purity among the training rows (the mine stage's own).

    python bench/study/feature_ceiling.py PROJECT

PROJECT is a DVC project whose stages up to scan have run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from scan_core.evaluation import cluster_metrics  # noqa: E402
from scan_core.mining import read_neighbor_matrix  # noqa: E402
from scan_core.training.warm_start import spectral_partitions  # noqa: E402


def acc(labels: np.ndarray, clusters: np.ndarray) -> float:
    return round(cluster_metrics(labels, clusters)["acc"], 4)


def study(root: Path) -> dict:
    manifest = pd.read_parquet(root / "artifacts/prepare/manifest.parquet")
    train, evaluate = manifest["in_train"].to_numpy(), manifest["in_eval"].to_numpy()
    labels = manifest["label"].to_numpy()
    clusters = int(labels.max()) + 1
    features = np.load(root / "artifacts/embed/backbone_features.npy")
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    probe = LogisticRegression(max_iter=300, C=10)
    if np.array_equal(train, evaluate):
        predicted = cross_val_predict(probe, features[evaluate], labels[evaluate], cv=5)
    else:
        predicted = probe.fit(features[train], labels[train]).predict(features[evaluate])
    recall = [float(np.mean(predicted[labels[evaluate] == c] == c)) for c in range(clusters)]
    nearest = read_neighbor_matrix(root / "artifacts/mine/neighbors.parquet", 20)[1]  # columns by rank
    matrix = {k: nearest[:, :k] for k in (5, 20)}
    scan = pd.read_parquet(root / "artifacts/scan/predictions.parquet")["cluster"].to_numpy()
    purity_rows = json.loads((root / "artifacts/mine/purity.json").read_text())
    purity = {row["k"]: round(row["purity"], 4) for row in purity_rows}
    return {
        "linear_probe_acc": round(float(np.mean(predicted == labels[evaluate])), 4),
        "linear_probe_recall_per_class": [round(r, 3) for r in recall],
        "spectral_acc_on_training_rows": {
            k: acc(labels[train], spectral_partitions(matrix[k], clusters, 1, 0)[0].numpy()) for k in (5, 20)},
        "neighbor_purity_on_training_rows": {k: purity[k] for k in (1, 5, 20) if k in purity},
        "scan_acc": {"training rows": acc(labels[train], scan[train]),
                     "evaluation rows": acc(labels[evaluate], scan[evaluate])},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("project", type=Path)
    print(json.dumps(study(parser.parse_args().project), indent=1))


if __name__ == "__main__":
    main()
