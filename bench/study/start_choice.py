"""Could a label-free score tell which start suits a data set? Heads only, on a finished run's
cached backbone features (``size_prior.train_heads``, 40 epochs): from k-means partitions with
the paper's entropy weight 5 (the pipeline's SCAN) and from spectral clusterings of the mined
graph with no size term (unequal clusters allowed), then the other two pairings. For each it
prints ACC / NMI (labels only score) beside the health check's two label-free scores of the
kept head's clusters on the mined neighbors: modularity and neighbor agreement.

    python bench/study/start_choice.py PROJECT

A score would do if, on every data set, it ranks the row with the higher ACC first.
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
from bench.study.size_prior import starting_partitions, train_heads  # noqa: E402
from scan_core.evaluation import cluster_metrics  # noqa: E402
from scan_core.health import neighbor_agreement, neighbor_modularity  # noqa: E402
from scan_core.training.common import compute_features  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("project", type=Path)
    parser.add_argument("--epochs", type=int, default=40)
    arguments = parser.parse_args()
    run = load_finished_run(arguments.project)
    neighbors = torch.from_numpy(np.array(run.neighbors))
    with torch.no_grad():
        features = compute_features(run.pretext.backbone, run.images, run.augment, 512, torch.device("cpu"))
    starts = {start: starting_partitions(run, start, 0) for start in ("kmeans", "spectral")}
    for start, weight in (("kmeans", 5.0), ("spectral", 0.0), ("kmeans", 0.0), ("spectral", 5.0)):
        probs, final = train_heads(features, neighbors, starts[start], None, weight, arguments.epochs, 0)
        clusters = probs[int(final.argmin())].argmax(1).numpy()
        scores = cluster_metrics(run.labels, clusters)
        print(json.dumps({"start": start, "entropy_weight": weight,
                          "acc": round(scores["acc"], 4), "nmi": round(scores["nmi"], 4),
                          "modularity": round(neighbor_modularity(clusters, run.neighbors), 4),
                          "neighbor_agreement": round(neighbor_agreement(clusters, run.neighbors), 4)}), flush=True)


if __name__ == "__main__":
    main()
