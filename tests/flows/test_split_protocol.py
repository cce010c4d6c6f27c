"""A run over labeled and unlabeled splits: scored on the labeled evaluation rows only, with
the rows trained on and evaluated recorded beside the metrics."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from scan_core.evaluation import cluster_metrics
from tests.conftest import make_project, set_params
from tests.data import format_fixtures as fixtures


def test_stl_train_plus_unlabeled_is_scored_on_its_labeled_rows(tmp_path, monkeypatch, prefect_api):
    from flows.pipeline import scan_pipeline

    written = fixtures.write_stl10(tmp_path / "stl", {"train": 40, "test": 10, "unlabeled": 40})
    project = make_project(tmp_path / "project")
    # Trained and evaluated on the same mixed images, so unlabeled rows are among those evaluated.
    set_params(project, {"data": {"name": "stl10", "root": str(tmp_path / "stl"), "image_size": 16,
                                  "train_split": "train+unlabeled", "eval_split": "train+unlabeled"}})
    monkeypatch.chdir(project)
    assert scan_pipeline()["evaluate"] == "Completed"

    metrics = json.loads((project / "metrics/evaluate.json").read_text())
    assert metrics["protocol"] == {"train_split": "train+unlabeled", "eval_split": "train+unlabeled",
                                   "train_rows": 80, "eval_rows": 80, "labeled_eval_rows": 40}
    manifest = pd.read_parquet(project / "artifacts/prepare/manifest.parquet")
    labels = manifest["label"].to_numpy()
    assert labels[:40].tolist() == written["train"][1].tolist() and (labels[40:] == -1).all()
    predictions = pd.read_parquet(project / "artifacts/selflabel/predictions.parquet").set_index("index")
    clusters = predictions.loc[manifest["index"], "cluster"].to_numpy()
    probabilities = np.stack(predictions.loc[manifest["index"], "probs"].to_numpy())
    expected = cluster_metrics(labels[:40], clusters[:40], probabilities[:40], num_classes=10)
    assert metrics["selflabel"]["acc"] == round(expected["acc"], 6)
    assert metrics["selflabel"]["nmi"] == round(expected["nmi"], 6)
    assert {"acc", "nmi", "ari"} <= set(metrics["kmeans"])
    assert "labels are known for 40 of the 80" in (project / "reports/report.md").read_text()
