"""Prefect artifacts (the UI's Artifacts tab) and the data files `dvc plots` draws."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import yaml

import tasks.artifacts as stage_artifacts
from tasks import paths
from tasks.evaluate import confusion_records
from tasks.progress import epoch_logger
from tasks.stages import STAGES
from tests.conftest import PROJECT_ROOT

CURVE_FILES = {paths.PRETEXT_CURVES_FILE, paths.SCAN_CURVES_FILE, paths.SELFLABEL_CURVES_FILE,
               paths.PURITY_CURVE_FILE, paths.CONFUSION_DATA_FILE}


def _declared_by(path: str) -> list[str]:
    """The stages whose declared outputs hold ``path``."""
    return [name for name, spec in STAGES.items()
            if any(path == output or Path(output) in Path(path).parents for output in spec.outputs)]


def test_keys_are_what_prefect_accepts():
    assert stage_artifacts.artifact_key("pretext") == "scan-pretext"
    assert stage_artifacts.artifact_key("selflabel", "progress") == "scan-selflabel-progress"
    assert stage_artifacts.artifact_key("Scan_Head 2") == "scan-scan-head-2"


def test_nothing_is_published_outside_a_prefect_run(monkeypatch):
    def no_client(*args, **kwargs):
        raise AssertionError("an artifact was created outside a Prefect run")

    for name in ("create_table_artifact", "create_markdown_artifact", "create_progress_artifact",
                 "update_progress_artifact"):
        monkeypatch.setattr(stage_artifacts.artifacts, name, no_client)
    assert not stage_artifacts.in_prefect_run()
    stage_artifacts.publish_key_numbers("pretext", {"final loss": 1.5})
    stage_artifacts.publish_report("# report\n![confusion](../plots/confusion.png)\n", paths.REPORT_DIR)
    on_epoch = epoch_logger(logging.getLogger("test"), "scan", 2, lambda record: "")
    on_epoch(1, {})
    on_epoch(2, {})


def test_a_failure_to_publish_is_a_warning_not_a_failed_stage(monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise ConnectionError("no Prefect API")

    monkeypatch.setattr(stage_artifacts, "in_prefect_run", lambda: True)
    monkeypatch.setattr(stage_artifacts.artifacts, "create_table_artifact", broken)
    monkeypatch.setattr(stage_artifacts.artifacts, "create_progress_artifact", broken)
    with caplog.at_level(logging.WARNING, logger=stage_artifacts.__name__):
        stage_artifacts.publish_key_numbers("mine", {"topk": 20})
        epoch_logger(logging.getLogger("test"), "pretext", 3, lambda record: "")(1, {})
    assert "no Prefect API" in caplog.text


def test_inside_a_flow_run_each_stage_publishes_its_table_progress_and_report(prefect_api):
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    @flow
    def stage_like() -> None:
        on_epoch = epoch_logger(logging.getLogger("test"), "pretext", 4, lambda record: "")
        for epoch in range(1, 5):
            on_epoch(epoch, {"loss": 1.0 / epoch})
        stage_artifacts.publish_key_numbers("pretext", {"final loss": np.float32(0.25), "epochs": 4})
        stage_artifacts.publish_metrics({"scan": {"acc": 0.9, "nmi": 0.8, "ari": 0.7, "nonempty_clusters": 10,
                                                  "health": {"neighbor_agreement": 0.95, "size_balance": 0.99}},
                                         "kmeans": {"acc": 0.8, "nmi": 0.7, "ari": 0.6,
                                                    "health": {"neighbor_agreement": 0.9, "size_balance": 0.98}}},
                                        num_clusters=10)
        stage_artifacts.publish_report("# SCAN report\n\n![confusion](../plots/confusion.png)\n", paths.REPORT_DIR,
                                       paths.REPORT_DIR / "index.html")

    stage_like()
    keys = ["scan-pretext", "scan-pretext-progress", "scan-evaluate", "scan-report"]
    with get_client(sync_client=True) as client:
        found = {artifact.key: artifact for artifact in client.read_latest_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys)))}
    assert set(found) == set(keys)
    assert found["scan-pretext-progress"].data == 100.0
    assert {"key number": "final loss", "value": 0.25} in json.loads(found["scan-pretext"].data)
    rows = json.loads(found["scan-evaluate"].data)
    assert [row["model"] for row in rows] == ["scan", "kmeans"]
    assert rows[0]["acc"] == 0.9 and rows[0]["clusters"] == 10 and rows[0]["neighbor_agreement"] == 0.95
    assert "`plots/confusion.png`" in found["scan-report"].data and "reports/index.html" in found["scan-report"].data


def test_confusion_records_pair_each_labeled_image_with_its_cluster_matched_class():
    labels = np.array([0, 0, 1, 1, 2, -1])
    clusters = np.array([3, 3, 1, 3, 2, 1])  # four clusters for three classes: majority class of each
    records = confusion_records(labels, clusters, 4, ["cat", "dog", "owl"])
    assert records == [{"actual": "cat", "predicted": "cat"}, {"actual": "cat", "predicted": "cat"},
                       {"actual": "dog", "predicted": "dog"}, {"actual": "dog", "predicted": "cat"},
                       {"actual": "owl", "predicted": "owl"}]


def test_every_plot_in_dvc_yaml_reads_a_file_a_stage_writes():
    document = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())
    data_files, images = set(), set()
    for entry in document["plots"]:
        if isinstance(entry, str):
            images.add(entry)
            continue
        ((name, spec),) = entry.items()
        assert {"x", "y", "template"} <= set(spec), name
        data_files.update(spec["y"])
    assert data_files == {path.as_posix() for path in CURVE_FILES}
    for path in data_files | images:
        assert len(_declared_by(path)) == 1, f"{path} lies in no stage's outputs"
    model = document["artifacts"]["selflabel-model"]
    assert model["type"] == "model" and model["path"] == paths.SELFLABEL_MODEL_FILE.as_posix()
    assert _declared_by(model["path"]) == ["selflabel"]
