"""mine: the top-k nearest training neighbors of every training image, as Parquet."""

from __future__ import annotations

import json

from prefect import get_run_logger

from scan_core.mining import mined_purity, search_neighbors, write_neighbors
from tasks.artifacts import publish_key_numbers
from tasks.common import StagedOutputs, stage_task
from tasks.device import device
from tasks.paths import (BACKBONE_FEATURES_FILE, EMBEDDINGS_FILE, MINE_METRICS_FILE, NEIGHBORS_FILE,
                         PURITY_CURVE_FILE)
from tasks.prepared import load_prepared, load_rows
from tasks.stages import group

PURITY_KS = (1, 5, 10, 20, 50)


@stage_task("mine")
def mine(params: dict, inputs: dict, out: StagedOutputs) -> None:
    settings = group(params, "mine")
    topk = settings["topk"]
    prepared = load_prepared()
    rows = prepared.train_rows
    embeddings = load_rows(BACKBONE_FEATURES_FILE if settings["space"] == "backbone" else EMBEDDINGS_FILE, prepared)[rows]
    mined = search_neighbors(embeddings, topk, ids=prepared.manifest["index"].to_numpy()[rows], device=device(),
                             approximate_above=settings["approximate_above"], nprobe=settings["nprobe"],
                             recall_sample=settings["recall_sample"])
    write_neighbors(out(NEIGHBORS_FILE), mined)
    metrics: dict = {"topk": topk, "space": settings["space"], **mined.search_metrics()}
    get_run_logger().info("mine: %d anchors, %s search (%s), recall@%d %.4f", len(rows), mined.index, mined.backend,
                          topk, mined.recall_at_k)
    if prepared.labels is not None:
        purity = mined_purity(mined, prepared.labels, list(range(1, topk + 1)))
        metrics["purity"] = {f"top{k}": round(purity[k], 6) for k in PURITY_KS if k in purity}
        get_run_logger().info("neighbor purity: %s", metrics["purity"])
        curve = [{"k": k, "purity": round(value, 6)} for k, value in purity.items()]
        out(PURITY_CURVE_FILE).write_text(json.dumps(curve, indent=1))  # plotted by dvc plots
    out(MINE_METRICS_FILE).write_text(json.dumps(metrics, indent=1))
    purities = {f"purity {name}": value for name, value in metrics.get("purity", {}).items()}
    publish_key_numbers("mine", {"anchors": len(rows), "topk": topk, "space": settings["space"],
                                 "index": mined.index, "recall@k": mined.recall_at_k, **purities})
