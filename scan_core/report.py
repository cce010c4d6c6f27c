"""The report a person reads, in two renders of the same content: the HTML page (one
self-contained file, every picture inlined as a data URI, no external reference, so it can be
mailed, attached to a run or opened offline) and its Markdown summary (the metrics and health
tables, for the Prefect UI and terminals)."""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image, UnidentifiedImageError  # noqa: E402

from scan_core.data.image_file import open_oriented, to_gray_or_rgb  # noqa: E402
from scan_core.figures import confusion_figure  # noqa: E402

MODEL_NAMES = {"kmeans": "k-means baseline", "scan": "SCAN", "selflabel": "SCAN + self-labeling"}
SECTION_TITLES = {
    "metrics": "Metrics",
    "confusion": "Confusion matrix",
    "clusters": "Clusters",
    "uncertain": "Least confident images",
    "purity": "Neighbor purity against k",
    "confidence": "Confidence",
    "training": "Training curves",
}


@dataclass
class ReportInputs:
    """Everything the report shows, for the evaluated images (one row per image).

    ``prototypes`` holds, per cluster, positions into ``images``; ``originals`` the user's
    own file of each image when the data set has files (None where it has none)."""

    title: str
    metrics: dict
    predictions: np.ndarray
    confidences: dict[str, np.ndarray]
    images: np.ndarray  # or an ImageRows view (scan_core.data.image_store): read one image at a time
    prototypes: list[np.ndarray]
    curves: dict[str, list[float]]
    num_clusters: int
    notes: list[str] = field(default_factory=list)
    originals: list[Path | None] | None = None
    labels: np.ndarray | None = None
    class_names: list[str] | None = None
    confusion: np.ndarray | None = None
    purity: dict[int, float] | None = None
    uncertain_count: int = 16
    thumbnail_size: int = 96


def original_file(source: str, root: str | Path | None) -> Path | None:
    """The user's file behind a manifest ``source``, when there is one to read: sources of
    folder data sets are paths relative to the data root; array data sets (``digits:all:3``)
    have none."""
    path = Path(source)
    if not path.is_absolute():
        if root is None:
            return None
        path = Path(root) / path
    return path if path.is_file() else None


def neighbor_purity_curve(neighbors: np.ndarray, labels: np.ndarray) -> dict[int, float]:
    """Share of each image's first k mined neighbors with its label, for k = 1 .. all mined
    ones: how far the neighbors can be trusted, which bounds what SCAN can learn from them.
    ``neighbors`` are positions into ``labels``; pairs with an unknown label (-1) are left out."""
    anchor_labels = labels[:, None]
    neighbor_labels = labels[neighbors]
    known = (anchor_labels >= 0) & (neighbor_labels >= 0)
    same = (anchor_labels == neighbor_labels) & known
    same_cumulative, known_cumulative = same.sum(axis=0).cumsum(), known.sum(axis=0).cumsum()
    return {k + 1: float(same_cumulative[k] / known_cumulative[k])
            for k in range(neighbors.shape[1]) if known_cumulative[k] > 0}


def _data_uri(payload: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def _figure_uri(figure: plt.Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    plt.close(figure)
    return _data_uri(buffer.getvalue(), "image/png")


def thumbnail_uri(image: np.ndarray, original: Path | None = None, size: int = 96) -> str:
    """The image as a data URI: the user's own file shrunk to ``size`` pixels when it can be
    read (what they recognise), else the stored training-resolution pixels enlarged without
    smoothing (so an 8x8 digit stays legible and honest about its resolution)."""
    if original is not None:
        try:
            with open_oriented(original) as picture:
                picture = to_gray_or_rgb(picture).convert("RGB")
                picture.thumbnail((size, size))
                buffer = io.BytesIO()
                picture.save(buffer, format="JPEG", quality=85)
                return _data_uri(buffer.getvalue(), "image/jpeg")
        except (OSError, UnidentifiedImageError):
            pass  # unreadable now: the stored pixels still show what was trained on
    pixels = image.squeeze(-1) if image.ndim == 3 and image.shape[-1] == 1 else image
    scale = max(1, size // max(pixels.shape[:2]))
    picture = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8))
    picture = picture.resize((pixels.shape[1] * scale, pixels.shape[0] * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return _data_uri(buffer.getvalue(), "image/png")


def _thumbnail(inputs: ReportInputs, position: int, caption: str) -> str:
    original = inputs.originals[position] if inputs.originals is not None else None
    uri = thumbnail_uri(inputs.images[position], original, inputs.thumbnail_size)
    title = html.escape(f"{original.name if original is not None else f'image {position}'}: {caption}")
    return (f'<figure class="thumb" style="width: {inputs.thumbnail_size}px"><img src="{uri}" alt="{title}" '
            f'title="{title}" width="{inputs.thumbnail_size}"><figcaption>{html.escape(caption)}</figcaption></figure>')


def _section(section_id: str, body: str) -> str:
    return f'<section id="{section_id}">\n<h2>{SECTION_TITLES[section_id]}</h2>\n{body}\n</section>'


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _metrics_section(metrics: dict) -> str:
    """Label-based scores beside the k-means baseline (when labels exist), then the
    label-free health, which every run has."""
    parts = []
    scored = [name for name, values in metrics.items() if isinstance(values, dict) and "acc" in values]
    if scored:
        keys = [key for key in METRIC_COLUMNS if any(key in metrics[name] for name in scored)]
        baseline = metrics.get("kmeans", {})
        rows = []
        for name in scored:
            cells = [html.escape(MODEL_NAMES.get(name, name))]
            for key in keys:
                value = metrics[name].get(key)
                if value is None:
                    cells.append("")
                    continue
                delta = value - baseline[key] if name != "kmeans" and key in baseline else None
                sign = "" if delta is None else (f' <span class="{"up" if delta >= 0 else "down"}">'
                                                 f'({delta:+.3f} vs k-means)</span>')
                cells.append(f"{value:.4f}{sign}")
            rows.append(cells)
        parts.append(_table(["model", *(METRIC_COLUMNS[key] for key in keys)], rows))
    else:
        parts.append('<p class="note">No labels: accuracy, NMI and ARI need them; below is what can be said '
                     "without.</p>")
    health = [name for name, values in metrics.items() if isinstance(values, dict) and "health" in values]
    if health:
        rows = [[html.escape(MODEL_NAMES.get(name, name)),
                 *(f"{metrics[name]['health'][key]:.3f}" if key in metrics[name]["health"] else ""
                   for key in HEALTH_COLUMNS)] for name in health]
        parts.append("<h3>Label-free health</h3><p>On the training images and their mined neighbors; "
                     "no labels needed.</p>" + _table(["model", *HEALTH_COLUMNS.values()], rows))
    if warning := metrics.get("health_warning"):
        parts.append(f'<p class="warning">{html.escape(warning)}</p>')
    return "\n".join(parts)


def _confusion_section(confusion: np.ndarray, class_names: list[str]) -> str:
    figure = confusion_figure(confusion, class_names)
    return ("<p>Self-labeled model; each row is one true class, normalised to 1, clusters matched to "
            f'classes.</p><img class="plot" src="{_figure_uri(figure)}" alt="confusion matrix">')


def _majority(inputs: ReportInputs, members: np.ndarray) -> str:
    if inputs.labels is None or inputs.class_names is None:
        return ""
    known = inputs.labels[members]
    known = known[known >= 0]
    if len(known) == 0:
        return ""
    counts = np.bincount(known, minlength=len(inputs.class_names))
    top = int(counts.argmax())
    return f"; mostly {html.escape(inputs.class_names[top])} ({counts[top] / len(known):.0%})"


def _clusters_section(inputs: ReportInputs) -> str:
    sizes = np.bincount(inputs.predictions, minlength=inputs.num_clusters)
    confidence = inputs.confidences.get("selflabel")
    rows = []
    for cluster in range(inputs.num_clusters):
        members = np.flatnonzero(inputs.predictions == cluster)
        mean = f", mean confidence {confidence[members].mean():.3f}" if confidence is not None and len(members) else ""
        strip = "".join(_thumbnail(inputs, int(position), f"cluster {cluster}")
                        for position in (inputs.prototypes[cluster] if cluster < len(inputs.prototypes) else []))
        rows.append(f'<div class="cluster" id="cluster-{cluster}"><h3>Cluster {cluster}: {sizes[cluster]} '
                    f'images{mean}{_majority(inputs, members)}</h3><div class="strip">'
                    f'{strip or "<p class=note>no images</p>"}</div></div>')
    return ("<p>Final (self-labeled) clusters with their most typical images: confident members closest to "
            "the cluster's mean embedding.</p>" + "\n".join(rows))


def _uncertain_section(inputs: ReportInputs) -> str:
    confidence = inputs.confidences.get("selflabel", next(iter(inputs.confidences.values())))
    order = np.argsort(confidence, kind="stable")[:inputs.uncertain_count]
    cells = []
    for position in order:
        caption = f"cluster {inputs.predictions[position]}, {confidence[position]:.2f}"
        if inputs.labels is not None and inputs.class_names is not None and inputs.labels[position] >= 0:
            caption += f", class {inputs.class_names[inputs.labels[position]]}"
        cells.append(_thumbnail(inputs, int(position), caption))
    return ("<p>The images the final model is least sure about: often ambiguous, mislabeled or unlike the "
            f'rest.</p><div class="strip">{"".join(cells)}</div>')


def _purity_section(purity: dict[int, float]) -> str:
    figure, axis = plt.subplots(figsize=(5, 3.2))
    axis.plot(list(purity), list(purity.values()), marker=".")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_xlabel("k (mined neighbors per image)")
    axis.set_ylabel("same label as the image")
    axis.grid(alpha=0.3)
    listed = ", ".join(f"k = {k}: {value:.3f}" for k, value in purity.items() if k in (1, 5, 10, 20, 50))
    return (f"<p>The neighbors SCAN learns from, checked against the labels: {html.escape(listed)}.</p>"
            f'<img class="plot" src="{_figure_uri(figure)}" alt="neighbor purity against k">')


def _confidence_section(confidences: dict[str, np.ndarray]) -> str:
    figure, axis = plt.subplots(figsize=(6, 3.2))
    bins = np.linspace(0, 1, 41)
    for name, values in confidences.items():
        axis.hist(values, bins=bins, alpha=0.55, label=MODEL_NAMES.get(name, name))
    axis.set_xlabel("confidence (highest cluster probability)")
    axis.set_ylabel("images")
    axis.set_yscale("log")
    axis.legend()
    return ("<p>How sure each model is of its cluster, per image.</p>"
            f'<img class="plot" src="{_figure_uri(figure)}" alt="confidence histogram">')


def _training_section(curves: dict[str, list[float]]) -> str:
    curves = {name: values for name, values in curves.items() if values}
    if not curves:
        return '<p class="note">No per-epoch history was recorded.</p>'
    columns = min(3, len(curves))
    rows = -(-len(curves) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3 * rows), squeeze=False)
    for axis, (name, values) in zip(axes.flat, curves.items()):
        axis.plot(np.arange(1, len(values) + 1), values)
        axis.set_title(name, fontsize=10)
        axis.set_xlabel("epoch")
    for axis in list(axes.flat)[len(curves):]:
        axis.axis("off")
    figure.tight_layout()
    return f'<img class="plot" src="{_figure_uri(figure)}" alt="training curves">'


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; padding: 0 1em; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 1.6em; }
h3 { font-size: 1em; margin: 0.8em 0 0.3em; }
nav a { margin-right: 1em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.up { color: #17803d; } .down { color: #b42318; }
.warning { background: #fff4e5; border-left: 4px solid #f79009; padding: 0.5em; }
.note { color: #666; }
.strip { display: flex; flex-wrap: wrap; gap: 4px; }
.thumb { margin: 0 0 0.4em; text-align: center; font-size: 0.7em; color: #555; overflow-wrap: anywhere; }
.thumb img { display: block; image-rendering: pixelated; border: 1px solid #eee; }
.cluster .thumb figcaption { display: none; }
img.plot { max-width: 100%; }
"""


def render_html(inputs: ReportInputs) -> str:
    """The whole report as one HTML string. Parts that need labels (confusion matrix,
    neighbor purity, scores) are left out when there are none; the rest is always there."""
    sections = {"metrics": _metrics_section(inputs.metrics)}
    if inputs.confusion is not None and inputs.class_names is not None:
        sections["confusion"] = _confusion_section(inputs.confusion, inputs.class_names)
    sections["clusters"] = _clusters_section(inputs)
    sections["uncertain"] = _uncertain_section(inputs)
    if inputs.purity:
        sections["purity"] = _purity_section(inputs.purity)
    sections["confidence"] = _confidence_section(inputs.confidences)
    sections["training"] = _training_section(inputs.curves)
    nav = "".join(f'<a href="#{section_id}">{SECTION_TITLES[section_id]}</a>' for section_id in sections)
    notes = "".join(f"<li>{html.escape(note)}</li>" for note in inputs.notes)
    body = "\n".join(_section(section_id, content) for section_id, content in sections.items())
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(inputs.title)}'
            f"</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{html.escape(inputs.title)}</h1>\n"
            f"<nav>{nav}</nav>\n<ul class=\"notes\">{notes}</ul>\n{body}\n</body>\n</html>\n")


METRIC_COLUMNS = {"acc": "ACC", "acc_many_to_one": "ACC many-to-one", "nmi": "NMI", "ari": "ARI", "top5": "TOP5"}


def markdown_report(title: str, metrics: dict, pictures: list[str], notes: list[str]) -> str:
    lines = [f"# {title}", ""]
    rows = [(name, values) for name, values in metrics.items() if isinstance(values, dict) and "acc" in values]
    if rows:
        keys = [key for key in METRIC_COLUMNS if any(key in values for _, values in rows)]
        lines += ["| model | " + " | ".join(METRIC_COLUMNS[key] for key in keys) + " |",
                  "|---|" + "---|" * len(keys)]
        lines += [f"| {name} | " + " | ".join(f"{values[key]:.4f}" if key in values else "" for key in keys) + " |"
                  for name, values in rows]
        lines.append("")
    lines += health_table(metrics)
    lines += [f"- {note}" for note in notes]
    lines.append("")
    lines += [f"![{Path(picture).stem}]({picture})" for picture in pictures]
    return "\n".join(lines) + "\n"


HEALTH_COLUMNS = {"neighbor_agreement": "neighbor pairs in one cluster", "modularity": "modularity (beyond chance)",
                  "size_balance": "size balance",
                  "mean_confidence": "mean confidence", "confident_share": "confident (> 0.99)"}


def health_table(metrics: dict) -> list[str]:
    """Markdown lines of the label-free health of each model (empty when there is none)."""
    rows = [(name, values["health"]) for name, values in metrics.items()
            if isinstance(values, dict) and "health" in values]
    if not rows:
        return []
    lines = ["Label-free health (no labels needed; on the training images and their mined neighbors):", "",
             "| model | " + " | ".join(HEALTH_COLUMNS.values()) + " |", "|---|" + "---|" * len(HEALTH_COLUMNS)]
    lines += [f"| {name} | " + " | ".join(f"{health[key]:.3f}" if key in health else "" for key in HEALTH_COLUMNS)
              + " |" for name, health in rows]
    return lines + [""]
