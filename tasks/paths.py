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
# Per-epoch records of each training stage, plotted by `dvc plots` (one dict per epoch).
PRETEXT_CURVES_FILE = PRETEXT_DIR / "curves.json"

EMBED_DIR = Path("artifacts/embed")
EMBEDDINGS_FILE = EMBED_DIR / "embeddings.npy"
BACKBONE_FEATURES_FILE = EMBED_DIR / "backbone_features.npy"

MINE_DIR = Path("artifacts/mine")
NEIGHBORS_FILE = MINE_DIR / "neighbors.parquet"
MINE_METRICS_FILE = Path("metrics/mine.json")
PURITY_CURVE_FILE = MINE_DIR / "purity.json"  # [{k, purity}] for k = 1..topk, when labels are known

SCAN_DIR = Path("artifacts/scan")
SCAN_MODEL_FILE = SCAN_DIR / "model.pt"
SCAN_PREDICTIONS_FILE = SCAN_DIR / "predictions.parquet"
SCAN_CURVES_FILE = SCAN_DIR / "curves.json"

SELFLABEL_DIR = Path("artifacts/selflabel")
SELFLABEL_MODEL_FILE = SELFLABEL_DIR / "model.pt"
SELFLABEL_PREDICTIONS_FILE = SELFLABEL_DIR / "predictions.parquet"
SELFLABEL_CURVES_FILE = SELFLABEL_DIR / "curves.json"

METRICS_FILE = Path("metrics/evaluate.json")
PLOTS_DIR = Path("plots")
CONFUSION_DATA_FILE = PLOTS_DIR / "confusion.json"  # [{actual, predicted}] per labeled evaluated image
REPORT_DIR = Path("reports")

SUMMARY_NAME = "summary.json"
