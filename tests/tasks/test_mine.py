"""mine: exact search at or below mine.approximate_above, IVF above it with its recall in
metrics/mine.json, and a neighbors file the scan stage reads back."""

from __future__ import annotations

import importlib
import json
import logging

import numpy as np
import pandas as pd
import pytest
import yaml

from scan_core.config import Params
from tasks.neighbors import training_neighbors
from tasks.paths import BACKBONE_FEATURES_FILE, MINE_METRICS_FILE, NEIGHBORS_FILE
from tasks.prepared import load_prepared
from tasks.stages import stage_params
from tests.conftest import PROJECT_ROOT

prepare_module = importlib.import_module("tasks.prepare")
mine_module = importlib.import_module("tasks.mine")


@pytest.fixture
def digits_with_features(tmp_path, monkeypatch):
    """digits prepared by the real stage (1,797 images) and backbone features that put each
    image near its class centre, so neighbors are mostly of the image's class."""
    monkeypatch.chdir(tmp_path)
    for module in (prepare_module, mine_module):
        monkeypatch.setattr(module, "get_run_logger", lambda: logging.getLogger("test"))
    monkeypatch.setenv("SCAN_DEVICE", "cpu")
    prepare_module.prepare.fn(stage_params(Params.model_validate(_project_params()), "prepare"), {})
    labels = pd.read_parquet("artifacts/prepare/manifest.parquet")["label"].to_numpy()
    rng = np.random.default_rng(0)
    features = rng.normal(size=(10, 16))[labels] + 0.8 * rng.normal(size=(len(labels), 16))
    BACKBONE_FEATURES_FILE.parent.mkdir(parents=True, exist_ok=True)
    np.save(BACKBONE_FEATURES_FILE, features.astype(np.float32))
    return labels


def _project_params(**mine) -> dict:
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    params["mine"].update(mine)
    return params


def _mine(**mine) -> dict:
    mine_module.mine.fn(stage_params(Params.model_validate(_project_params(**mine)), "mine"), {})
    return json.loads(MINE_METRICS_FILE.read_text())


def test_mine_stage_is_exact_at_the_threshold_and_ivf_above_it(digits_with_features):
    exact = _mine(topk=10, approximate_above=1797)
    assert (exact["index"], exact["recall_at_k"]) == ("exact", 1.0) and "recall_queries" not in exact
    exact_neighbors = training_neighbors(load_prepared()).numpy()
    assert exact_neighbors.shape == (1797, 10)
    assert exact["purity"]["top1"] > 0.8

    pytest.importorskip("faiss")
    approximate = _mine(topk=10, approximate_above=1796, nprobe=2, recall_sample=300)
    assert (approximate["index"], approximate["backend"], approximate["recall_queries"]) == ("ivf", "faiss-cpu", 300)
    assert (approximate["nlist"], approximate["nprobe"]) == (46, 2)  # 1797 // 39 lists
    # The recall written is that of the file's neighbors against the exact ones, on the sample.
    found = training_neighbors(load_prepared()).numpy()
    sample = np.sort(np.random.default_rng(0).choice(1797, 300, replace=False))
    hits = (found[sample][:, :, None] == exact_neighbors[sample][:, None, :]).any(axis=1)
    assert approximate["recall_at_k"] == pytest.approx(hits.mean(), abs=1e-6)
    assert 0.5 < approximate["recall_at_k"] < 1.0
    assert pd.read_parquet(NEIGHBORS_FILE).shape == (17970, 4)
