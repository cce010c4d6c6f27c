"""mine: the top-k nearest training neighbors of every training image, as Parquet."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from prefect import get_run_logger

from scan_core.checkpoint import atomic_path, atomic_write_text
from scan_core.mining import mine_neighbors, neighbor_purity
from tasks.embed import BACKBONE_FEATURES_FILE, EMBEDDINGS_FILE
from tasks.common import stage_task
from tasks.prepared import load_prepared
from tasks.stages import group

NEIGHBORS_FILE = Path("artifacts/mine/neighbors.parquet")
MINE_METRICS_FILE = Path("metrics/mine.json")
PURITY_KS = (1, 5, 10, 20, 50)


@stage_task("mine")
def mine(params: dict, inputs: dict) -> None:
    settings = group(params, "mine")
    topk = settings["topk"]
    prepared = load_prepared()
    rows = prepared.train_rows
    embeddings = np.load(BACKBONE_FEATURES_FILE if settings["space"] == "backbone" else EMBEDDINGS_FILE)[rows]
    table = mine_neighbors(embeddings, topk, ids=prepared.manifest["index"].to_numpy()[rows])
    with atomic_path(NEIGHBORS_FILE) as temporary:
        table.to_parquet(temporary, index=False)
    metrics: dict = {"topk": topk, "space": settings["space"]}
    if prepared.labels is not None:
        purity = neighbor_purity(table, prepared.labels, [k for k in PURITY_KS if k <= topk])
        metrics["purity"] = {f"top{k}": round(value, 6) for k, value in purity.items()}
        get_run_logger().info("neighbor purity: %s", metrics["purity"])
    atomic_write_text(MINE_METRICS_FILE, json.dumps(metrics, indent=1))
