"""evaluate: score k-means, SCAN and self-labeling against labels (when known), draw the report."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from prefect import get_run_logger

from scan_core.evaluation import (cluster_metrics, cluster_summary, confusion_matrix, kmeans_clusters, labeled_mask,
                                  match_clusters)
from scan_core.figures import (
    plot_cluster_count_curve,
    plot_cluster_sizes,
    plot_confusion,
    plot_prototypes,
    plot_training_curves,
    prototype_indices,
)
from scan_core.health import health_warning, label_free_health
from scan_core.prediction_table import probability_matrix
from scan_core.report import ReportInputs, markdown_report, neighbor_purity_curve, original_file, render_html
from tasks.artifacts import publish_metrics, publish_report
from tasks.common import StagedOutputs, stage_task
from tasks.neighbors import training_neighbors
from tasks.paths import (CONFUSION_DATA_FILE, EMBEDDINGS_FILE, METRICS_FILE, PLOTS_DIR, REPORT_DIR, SCAN_DIR,
                         SCAN_PREDICTIONS_FILE, SELFLABEL_DIR, SELFLABEL_PREDICTIONS_FILE, SUMMARY_NAME)
from tasks.prepared import Prepared, load_prepared, load_rows
from tasks.stages import group


def _rounded(values: dict) -> dict:
    return {key: round(value, 6) if isinstance(value, float) else value for key, value in values.items()}


# Above this many training rows k-means (10 restarts) is fitted on a seeded sample of them
# and assigns all rows; at or below it (digits, Fashion-MNIST) it is fitted on all, as before.
KMEANS_FIT_ROWS = 50_000


def kmeans_baseline(prepared: Prepared, embeddings: np.ndarray, num_clusters: int,
                    seed: int) -> tuple[np.ndarray, np.ndarray]:
    """k-means fitted on the training rows (a seeded sample of ``KMEANS_FIT_ROWS`` when there
    are more), like every other model, then applied to the evaluation rows: ``(clusters of the
    eval rows, clusters of the train rows)``."""
    train, evaluated = embeddings[prepared.train_rows], embeddings[prepared.eval_rows]
    if len(train) <= KMEANS_FIT_ROWS:
        on_train, on_eval = kmeans_clusters(train, num_clusters, seed, also=evaluated)
        return on_eval, on_train
    sample = np.sort(np.random.default_rng(seed).choice(len(train), KMEANS_FIT_ROWS, replace=False))
    _, on_all = kmeans_clusters(train[sample], num_clusters, seed, also=np.concatenate([train, evaluated]))
    return on_all[len(train):], on_all[: len(train)]


def confusion_records(labels: np.ndarray, predictions: np.ndarray, num_clusters: int,
                      class_names: list[str]) -> list[dict[str, str]]:
    """``{actual, predicted}`` for every labeled image, for DVC's confusion template: its class
    and the class its cluster is matched to, as in ``plots/confusion.png`` (one-to-one, or
    each cluster to its majority class when there are more clusters than classes)."""
    known = labeled_mask(labels)
    labels, predictions = np.asarray(labels)[known], np.asarray(predictions)[known]
    num_classes = int(labels.max()) + 1
    mapping = match_clusters(labels, predictions, num_clusters, many_to_one=num_clusters > num_classes)
    names = [class_names[mapping[cluster]] if mapping[cluster] >= 0 else f"cluster {cluster}"
             for cluster in range(len(mapping))]
    return [{"actual": class_names[label], "predicted": names[cluster]}
            for label, cluster in zip(labels.tolist(), predictions.tolist())]


def _health(prepared: Prepared, kmeans_on_train: np.ndarray, num_clusters: int) -> dict[str, dict[str, float]]:
    """Label-free health of every model on the training images, where the mined neighbors are."""
    neighbors = training_neighbors(prepared).numpy()
    order = prepared.manifest["index"].to_numpy()[prepared.train_rows]
    health = {"kmeans": label_free_health(kmeans_on_train, num_clusters, neighbors)}
    for name, path in (("scan", SCAN_PREDICTIONS_FILE), ("selflabel", SELFLABEL_PREDICTIONS_FILE)):
        table = pd.read_parquet(path, columns=["index", "cluster", "confidence"]).set_index("index").loc[order]
        health[name] = label_free_health(table["cluster"].to_numpy(), num_clusters, neighbors,
                                         table["confidence"].to_numpy())
    return health


@stage_task("evaluate")
def evaluate(params: dict, inputs: dict, out: StagedOutputs) -> None:
    settings = group(params, "evaluate")
    prepared = load_prepared()
    rows = prepared.eval_rows
    tables = {name: pd.read_parquet(path).set_index("index").loc[prepared.manifest["index"].to_numpy()[rows]]
              for name, path in (("scan", SCAN_PREDICTIONS_FILE), ("selflabel", SELFLABEL_PREDICTIONS_FILE))}
    probabilities = {name: probability_matrix(table) for name, table in tables.items()}
    num_clusters = probabilities["scan"].shape[1]
    all_embeddings = load_rows(EMBEDDINGS_FILE, prepared)
    embeddings = all_embeddings[rows]
    kmeans, kmeans_on_train = kmeans_baseline(prepared, all_embeddings, num_clusters, settings["kmeans_seed"])
    predictions = {"kmeans": kmeans}
    predictions.update({name: probs.argmax(axis=1) for name, probs in probabilities.items()})
    health = _health(prepared, kmeans_on_train, num_clusters)

    labels = prepared.labels
    if labels is not None:
        labels = labels[rows]
    # Which rows were trained on and which scored: metrics cover labeled evaluation rows only
    # (cluster_metrics leaves out the -1 labels of an unlabeled split joined to a labeled one).
    protocol = {"train_split": prepared.info["train_split"], "eval_split": prepared.info["eval_split"],
                "train_rows": int(len(prepared.train_rows)), "eval_rows": int(len(rows)),
                "labeled_eval_rows": int((labels >= 0).sum()) if labels is not None else 0}
    metrics: dict = {"split": prepared.info["eval_split"], "num_images": int(len(rows)), "protocol": protocol}
    notes = [f"{prepared.info['name']}, split {prepared.info['eval_split']}: {len(rows)} images, "
             f"{num_clusters} clusters; trained on {protocol['train_split']} ({protocol['train_rows']} images)"]
    if labels is not None and protocol["labeled_eval_rows"] < len(rows):
        notes.append(f"labels are known for {protocol['labeled_eval_rows']} of the {len(rows)} evaluated images; "
                     "ACC, NMI and ARI are computed over those")
    if skipped := prepared.info["skipped"]:
        metrics["skipped_images"] = len(skipped)
        notes.append(f"{len(skipped)} unreadable image(s) left out (data.on_bad_image: skip): " +
                     ", ".join(f"{item['source']} ({item['reason']})" for item in skipped))
    if labels is not None:
        for name, predicted in predictions.items():
            metrics[name] = _rounded(cluster_metrics(labels, predicted, probabilities.get(name),
                                                     len(prepared.info["class_names"])))
        if num_clusters > len(prepared.info["class_names"]):
            notes.append("more clusters than classes: ACC matches clusters to classes one-to-one (clusters left "
                         "unmatched count as wrong); ACC many-to-one maps each cluster to its majority class")
    else:
        notes.append("no labels were found: the metrics report cluster sizes and confidence only")
    for name, probs in probabilities.items():
        summary = cluster_summary(predictions[name], probs.max(axis=1), num_clusters)
        metrics.setdefault(name, {}).update(_rounded(summary))
    for name, values in health.items():
        metrics.setdefault(name, {})["health"] = _rounded(values)
    if warning := health_warning(health):
        metrics["health_warning"] = warning
        notes.append(warning)
        get_run_logger().warning(warning)
    summaries = {name: json.loads((stage_dir / SUMMARY_NAME).read_text())
                 for stage_dir, name in ((SCAN_DIR, "scan"), (SELFLABEL_DIR, "selflabel"))}
    for name, summary in summaries.items():
        if warning := summary.get("warning"):
            metrics[name]["warning"] = warning
            notes.append(f"{name}: {warning}")
    out(METRICS_FILE).write_text(json.dumps(metrics, indent=1, sort_keys=True) + "\n")

    pictures = []
    confusion = class_names = None
    if labels is not None:
        class_names = prepared.info["class_names"]
        confusion = confusion_matrix(labels, predictions["selflabel"], num_clusters)
        plot_confusion(confusion, class_names, out(PLOTS_DIR / "confusion.png"), "self-labeled model")
        pictures.append("../plots/confusion.png")
        records = confusion_records(labels, predictions["selflabel"], num_clusters, class_names)
        out(CONFUSION_DATA_FILE).write_text(json.dumps(records))  # plotted by dvc plots (confusion template)
    plot_cluster_sizes({name: np.bincount(predictions[name], minlength=num_clusters) for name in predictions},
                       out(PLOTS_DIR / "cluster_sizes.png"))
    scan_history, selflabel_history = summaries["scan"]["history"], summaries["selflabel"]["history"]
    curves = {"scan loss": [record["loss"] for record in scan_history],
              "scan entropy": [record["entropy"] for record in scan_history]}
    if selflabel_history:
        curves["selflabel confident images"] = [record["confident"] for record in selflabel_history]
    plot_training_curves(curves, out(PLOTS_DIR / "training.png"))
    pictures += ["../plots/cluster_sizes.png", "../plots/training.png"]
    if estimate := summaries["scan"].get("num_clusters_estimate"):
        notes.append(f"scan.num_clusters auto: {estimate['chosen']} clusters ({estimate['criterion']})")
        plot_cluster_count_curve(estimate["curve"], estimate["chosen"], estimate["criterion"],
                                 out(PLOTS_DIR / "num_clusters.png"))
        pictures.append("../plots/num_clusters.png")
    eval_images = prepared.eval_images  # read on demand: the report shows a few of them
    prototypes = []
    if settings["prototypes"] > 0:
        selflabel_probs = probabilities["selflabel"]
        prototypes = prototype_indices(embeddings, predictions["selflabel"], selflabel_probs.max(axis=1),
                                       settings["prototypes"], num_clusters)
        plot_prototypes(eval_images, prototypes, out(REPORT_DIR / "prototypes.png"))
        pictures.append("prototypes.png")
    out(REPORT_DIR / "report.md").write_text(markdown_report("SCAN report", metrics, pictures, notes))
    out(REPORT_DIR / "index.html").write_text(render_html(ReportInputs(
        title=f"SCAN report: {prepared.info['name']}", metrics=metrics, notes=notes,
        predictions=predictions["selflabel"], num_clusters=num_clusters,
        confidences={name: probs.max(axis=1) for name, probs in probabilities.items()},
        images=eval_images, prototypes=prototypes, labels=labels, class_names=class_names, confusion=confusion,
        # Thumbnails from the user's own files where the data set has them (sources relative to its root).
        originals=[original_file(source, prepared.info.get("root"))
                   for source in prepared.manifest["source"].to_numpy()[rows]],
        purity=neighbor_purity_curve(training_neighbors(prepared).numpy(), prepared.labels[prepared.train_rows])
        if prepared.labels is not None else None,
        curves={**{f"scan {key.replace('_', ' ')}": [record[key] for record in scan_history]
                   for key in ("loss", "consistency", "entropy", "neighbor_agreement", "mean_confidence")
                   if scan_history and key in scan_history[0]},
                **{f"selflabel {key}": [record[key] for record in selflabel_history]
                   for key in ("loss", "confident") if selflabel_history and key in selflabel_history[0]}},
    )), encoding="utf-8")
    logger = get_run_logger()
    for name in predictions:
        if "acc" in metrics.get(name, {}):
            logger.info("%-9s ACC %.4f  NMI %.4f  ARI %.4f", name, metrics[name]["acc"], metrics[name]["nmi"],
                        metrics[name]["ari"])
    publish_metrics(metrics, num_clusters)
    full_report = REPORT_DIR / "index.html"
    publish_report(out(REPORT_DIR / "report.md").read_text(), REPORT_DIR,
                   full_report if out(full_report).exists() else None)
