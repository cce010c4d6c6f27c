"""The HTML report: one self-contained file with every section a reader looks for; without
labels it keeps every part that needs none."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

from scan_core.report import ReportInputs, neighbor_purity_curve, original_file, render_html, thumbnail_uri

LABEL_FREE_SECTIONS = ("metrics", "clusters", "uncertain", "confidence", "training")


def synthetic_inputs(labeled: bool = True, originals: list[Path | None] | None = None) -> ReportInputs:
    """A small but complete report: 3 clusters of 8x8 grayscale images."""
    rng = np.random.default_rng(0)
    count, num_clusters = 30, 3
    predictions = np.arange(count) % num_clusters
    health = {"neighbor_agreement": 0.9, "size_balance": 0.99, "mean_confidence": 0.8, "confident_share": 0.5}
    metrics: dict = {"kmeans": {"health": health}, "scan": {"health": health}, "selflabel": {"health": health}}
    if labeled:
        metrics["kmeans"].update(acc=0.7, nmi=0.6, ari=0.5)
        metrics["scan"].update(acc=0.8, nmi=0.7, ari=0.6)
        metrics["selflabel"].update(acc=0.85, nmi=0.75, ari=0.65)
    return ReportInputs(
        title="SCAN report: synthetic",
        metrics=metrics,
        notes=["a note <with> markup"],
        predictions=predictions,
        confidences={"scan": rng.uniform(0.3, 1, count), "selflabel": rng.uniform(0.3, 1, count)},
        images=rng.integers(0, 256, (count, 8, 8, 1), dtype=np.uint8),
        prototypes=[np.flatnonzero(predictions == cluster)[:4] for cluster in range(num_clusters)],
        curves={"scan loss": [3.0, 2.0, 1.5], "selflabel confident": [10, 20, 25]},
        num_clusters=num_clusters,
        originals=originals,
        labels=predictions.copy() if labeled else None,
        class_names=["a", "b", "c"] if labeled else None,
        confusion=np.eye(3) if labeled else None,
        purity={1: 0.95, 2: 0.9, 3: 0.88} if labeled else None,
        uncertain_count=5,
    )


def section_ids(text: str) -> set[str]:
    return set(re.findall(r'<section id="([a-z]+)">', text))


def test_report_is_self_contained_every_image_inlined() -> None:
    text = render_html(synthetic_inputs())

    assert "http://" not in text and "https://" not in text
    sources = re.findall(r'<img[^>]*\ssrc="([^"]*)"', text)
    assert len(sources) == 3 * 4 + 5 + 4  # prototypes, least confident, 4 plots
    assert all(source.startswith("data:image/") for source in sources)
    assert not re.search(r'(?:href|src)="(?!#|data:)', text)  # only in-page links and data URIs
    assert "a note &lt;with&gt; markup" in text


def test_labeled_report_has_every_section_and_scores_beside_the_kmeans_baseline() -> None:
    text = render_html(synthetic_inputs())

    assert section_ids(text) == {*LABEL_FREE_SECTIONS, "confusion", "purity"}
    assert "k-means baseline" in text and "0.8500" in text and "(+0.150 vs k-means)" in text
    assert "Cluster 0: 10 images" in text and "mostly a (100%)" in text


def test_unlabeled_report_keeps_every_part_that_needs_no_labels() -> None:
    text = render_html(synthetic_inputs(labeled=False))

    assert section_ids(text) == set(LABEL_FREE_SECTIONS)
    assert "Label-free health" in text and "ACC" not in text
    assert all(source.startswith("data:image/") for source in re.findall(r'<img[^>]*\ssrc="([^"]*)"', text))


def test_thumbnails_come_from_the_users_files_when_there_are_files(tmp_path: Path) -> None:
    Image.new("RGB", (400, 200), (200, 30, 30)).save(tmp_path / "cat.png")

    assert original_file("cat.png", tmp_path) == tmp_path / "cat.png"
    assert original_file("digits:all:3", None) is None and original_file("gone.png", tmp_path) is None
    from_file = thumbnail_uri(np.zeros((8, 8, 3), dtype=np.uint8), tmp_path / "cat.png", size=96)
    from_pixels = thumbnail_uri(np.zeros((8, 8, 1), dtype=np.uint8), None, size=96)
    assert from_file.startswith("data:image/jpeg;base64,") and from_pixels.startswith("data:image/png;base64,")

    originals = [tmp_path / "cat.png"] + [None] * 29
    text = render_html(synthetic_inputs(originals=originals))
    assert 'alt="cat.png: cluster 0"' in text


def test_neighbor_purity_against_k_counts_known_labels_only() -> None:
    labels = np.array([0, 0, 1, -1])
    neighbors = np.array([[1, 2], [0, 3], [3, 0], [0, 1]])

    purity = neighbor_purity_curve(neighbors, labels)

    # k=1: pairs (0,1) same, (1,0) same, (2,3) unknown, (3,.) unknown -> 2/2
    # k=2 adds (0,2) different, (1,3) unknown, (2,0) different -> 2/4
    assert purity == {1: 1.0, 2: 0.5}
