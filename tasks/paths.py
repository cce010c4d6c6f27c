"""Where every stage's outputs live: one catalogue, so that a stage reading another's output
imports this file and not the other stage's code (its imports are its code dependencies)."""

from __future__ import annotations

from pathlib import Path

PREPARE_DIR = Path("artifacts/prepare")
IMAGES_FILE = PREPARE_DIR / "images.npy"
MANIFEST_FILE = PREPARE_DIR / "manifest.parquet"
DATASET_FILE = PREPARE_DIR / "dataset.json"

PRETEXT_DIR = Path("artifacts/pretext")
PRETEXT_MODEL_FILE = PRETEXT_DIR / "model.pt"

EMBED_DIR = Path("artifacts/embed")
EMBEDDINGS_FILE = EMBED_DIR / "embeddings.npy"
BACKBONE_FEATURES_FILE = EMBED_DIR / "backbone_features.npy"

MINE_DIR = Path("artifacts/mine")
NEIGHBORS_FILE = MINE_DIR / "neighbors.parquet"
MINE_METRICS_FILE = Path("metrics/mine.json")

SCAN_DIR = Path("artifacts/scan")
SCAN_MODEL_FILE = SCAN_DIR / "model.pt"
SCAN_PREDICTIONS_FILE = SCAN_DIR / "predictions.parquet"

SELFLABEL_DIR = Path("artifacts/selflabel")
SELFLABEL_MODEL_FILE = SELFLABEL_DIR / "model.pt"
SELFLABEL_PREDICTIONS_FILE = SELFLABEL_DIR / "predictions.parquet"

METRICS_FILE = Path("metrics/evaluate.json")
PLOTS_DIR = Path("plots")
REPORT_DIR = Path("reports")

SUMMARY_NAME = "summary.json"
