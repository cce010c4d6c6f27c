"""Can the class sizes be guessed without labels? Label-free estimates of the sorted class
proportions from a finished run's embeddings and mined neighbors, each printed with its L1
distance to the true sorted proportions (labels read only to score):

- Gaussian mixtures (diagonal, full, spherical covariances) on 16, 32 and 64 principal
  components of the projection embeddings and of the backbone features: their weights;
- Ward linkage on the same components: its cluster sizes;
- k-means overclustering (30, 50, 100 clusters) merged down to the class count by average
  linkage on the mined neighbor graph (density of neighbor pairs between groups).

    python bench/study/size_estimates.py PROJECT

A guess is useful only if it is near equal on balanced classes and near the truth on unequal
ones; docs/clusters.md ("When you know roughly how big the classes are") has what it found.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from sklearn.cluster import AgglomerativeClustering, KMeans
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.study.finished_run import load_finished_run  # noqa: E402


def merged_overclustering(embeddings: np.ndarray, neighbors: np.ndarray, clusters: int, over: int) -> np.ndarray:
    """k-means into ``over`` groups, then the two groups with the densest neighbor pairs between
    them merged until ``clusters`` are left; returns each image's merged group."""
    groups = KMeans(over, n_init=3, random_state=0).fit_predict(embeddings)
    pairs = np.zeros((over, over))
    np.add.at(pairs, (np.repeat(groups, neighbors.shape[1]), groups[neighbors.ravel()]), 1)
    pairs = pairs + pairs.T
    np.fill_diagonal(pairs, 0)
    sizes = np.bincount(groups, minlength=over).astype(float)
    owner, alive = np.arange(over), list(range(over))
    while len(alive) > clusters:
        density = pairs[np.ix_(alive, alive)] / np.outer(sizes[alive], sizes[alive])
        np.fill_diagonal(density, -1)
        first, second = (alive[index] for index in np.unravel_index(density.argmax(), density.shape))
        pairs[first] += pairs[second]
        pairs[:, first] += pairs[:, second]
        pairs[first, first] = 0
        sizes[first] += sizes[second]
        owner[owner == second] = first
        alive.remove(second)
    return np.searchsorted(sorted(alive), owner[groups])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("project", type=Path)
    root = parser.parse_args().project
    run = load_finished_run(root, num_neighbors=20)
    count, clusters = len(run.labels), int(run.labels.max()) + 1
    truth = np.sort(np.bincount(run.labels, minlength=clusters)) / count

    def report(name: str, sizes: np.ndarray) -> None:
        shares = np.sort(np.asarray(sizes, float)) / np.sum(sizes)
        print(f"{name:34s} L1 {np.abs(shares - truth).sum():.3f}  sizes {(shares * count).round().astype(int).tolist()}",
              flush=True)

    report("equal", np.ones(clusters))
    report("true", truth)
    spaces = {"embeddings": run.embeddings, "backbone": np.load(root / "artifacts/embed/backbone_features.npy")}
    for space, values in spaces.items():
        for dims in (16, 32, 64):
            reduced = PCA(dims, random_state=0).fit_transform(values)
            for covariance in ("diag", "full", "spherical"):
                mixture = GaussianMixture(clusters, covariance_type=covariance, n_init=3, random_state=0,
                                          reg_covar=1e-4).fit(reduced)
                report(f"{space} pca{dims} mixture-{covariance}", mixture.weights_)
            report(f"{space} pca{dims} ward", np.bincount(AgglomerativeClustering(clusters).fit_predict(reduced)))
    for over in (30, 50, 100):
        merged = merged_overclustering(run.embeddings, run.neighbors, clusters, over)
        report(f"k-means {over}, merged on neighbors", np.bincount(merged, minlength=clusters))


if __name__ == "__main__":
    main()
