"""Pictures of a clustering (matplotlib, written as PNG files): what people look at instead of numbers."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from scan_core.checkpoint import atomic_path  # noqa: E402


def _save(figure: plt.Figure, path: Path) -> None:
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format=path.suffix.lstrip("."), dpi=110, bbox_inches="tight",
                       metadata={"Software": None} if path.suffix == ".png" else None)
    plt.close(figure)


def confusion_figure(matrix: np.ndarray, class_names: list[str], title: str | None = None) -> plt.Figure:
    """The row-normalised confusion matrix, values written in the cells up to 20 classes."""
    size = max(4.0, 0.45 * len(class_names) + 2)
    figure, axis = plt.subplots(figsize=(size, size))
    axis.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
    axis.set_xticks(range(len(class_names)), class_names, rotation=90)
    axis.set_yticks(range(len(class_names)), class_names)
    axis.set_xlabel("cluster (matched to a class)")
    axis.set_ylabel("true class")
    if title is not None:
        axis.set_title(title)
    if len(class_names) <= 20:
        for (row, col), value in np.ndenumerate(matrix):
            if value >= 0.005:
                axis.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=7,
                          color="white" if value > 0.5 else "black")
    return figure


def plot_confusion(matrix: np.ndarray, class_names: list[str], path: Path, title: str) -> None:
    _save(confusion_figure(matrix, class_names, title), path)


def plot_cluster_sizes(sizes: dict[str, np.ndarray], path: Path) -> None:
    figure, axis = plt.subplots(figsize=(max(5.0, 0.3 * len(next(iter(sizes.values())))), 3.5))
    width = 0.8 / len(sizes)
    for offset, (name, counts) in enumerate(sizes.items()):
        axis.bar(np.arange(len(counts)) + offset * width, counts, width=width, label=name)
    axis.set_xlabel("cluster")
    axis.set_ylabel("images")
    axis.legend()
    _save(figure, path)


def plot_training_curves(curves: dict[str, list[float]], path: Path) -> None:
    figure, axes = plt.subplots(1, len(curves), figsize=(4 * len(curves), 3.2), squeeze=False)
    for axis, (name, values) in zip(axes[0], curves.items()):
        axis.plot(np.arange(1, len(values) + 1), values)
        axis.set_title(name)
        axis.set_xlabel("epoch")
    _save(figure, path)


def plot_cluster_count_curve(curve: dict[str, float], chosen: int, criterion: str, path: Path) -> None:
    """The label-free criterion behind ``scan.num_clusters: auto``, with the chosen count marked."""
    counts = [int(count) for count in curve]
    figure, axis = plt.subplots(figsize=(5, 3.2))
    axis.plot(counts, list(curve.values()), marker=".")
    axis.axvline(chosen, color="tab:red", linestyle="--", label=f"chosen: {chosen}")
    axis.set_xlabel("number of clusters")
    axis.set_ylabel("modularity")
    axis.set_title(criterion, fontsize=8)
    axis.legend()
    _save(figure, path)


def prototype_indices(embeddings: np.ndarray, predictions: np.ndarray, confidence: np.ndarray,
                      per_cluster: int, num_clusters: int) -> list[np.ndarray]:
    """Per cluster, its most confident images closest to the cluster's mean embedding."""
    chosen = []
    for cluster in range(num_clusters):
        members = np.flatnonzero(predictions == cluster)
        if len(members) == 0:
            chosen.append(members)
            continue
        confident = members[confidence[members] >= np.quantile(confidence[members], 0.5)]
        center = embeddings[confident].mean(axis=0)
        distance = np.linalg.norm(embeddings[confident] - center, axis=1)
        chosen.append(confident[np.argsort(distance)[:per_cluster]])
    return chosen


def plot_prototypes(images: np.ndarray, prototypes: list[np.ndarray], path: Path,
                    cluster_names: list[str] | None = None) -> None:
    """A grid: one row per cluster, its prototype images left to right."""
    rows, cols = len(prototypes), max((len(p) for p in prototypes), default=1) or 1
    figure, axes = plt.subplots(rows, cols, figsize=(0.9 * cols + 1.2, 0.9 * rows), squeeze=False)
    grayscale = images.shape[-1] == 1
    for row, members in enumerate(prototypes):
        for col in range(cols):
            axis = axes[row][col]
            axis.axis("off")
            if col < len(members):
                image = images[members[col]]
                axis.imshow(image.squeeze(-1) if grayscale else image, cmap="gray" if grayscale else None)
        label = cluster_names[row] if cluster_names else str(row)
        axes[row][0].text(-0.1, 0.5, label, transform=axes[row][0].transAxes, ha="right", va="center", fontsize=8)
    _save(figure, path)
