"""The pipeline flow and its cache: unchanged stages come back Cached, changed ones rerun,
and a cached result whose outputs were removed or altered is recomputed."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linear_sum_assignment

from tests.conftest import make_project, set_params

UPSTREAM = ["prepare", "pretext", "embed", "mine"]
DOWNSTREAM = ["scan", "selflabel", "evaluate"]


@dataclass(frozen=True)
class FirstRun:
    project: Path  # shared by the tests below, which change its params and outputs
    params_text: str  # its params.yaml as made, before any test touched it
    states: dict[str, str]
    outputs: Path  # a copy of what the first run wrote (artifacts, metrics, plots, reports)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory, prefect_api: str):
    """One tiny project, run once, its outputs copied aside before any test changes them."""
    from flows.pipeline import scan_pipeline

    root = tmp_path_factory.mktemp("pipeline")
    project = make_project(root / "project")
    params_text = (project / "params.yaml").read_text()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)
        states = scan_pipeline()
        for name in ("artifacts", "metrics", "plots", "reports"):
            shutil.copytree(project / name, root / "first_outputs" / name)
        yield FirstRun(project, params_text, states, root / "first_outputs")


@pytest.fixture
def pipeline_project(first_run: FirstRun):
    """(project, first run's states, scan_pipeline), with the params the project was made
    with, put back after the test from the file's own text whatever the test changed.
    A test that needs its outputs up to date runs the pipeline first (cached stages are
    cheap): which tests ran before, in which order, must not matter."""
    from flows.pipeline import scan_pipeline

    params = first_run.project / "params.yaml"
    params.write_text(first_run.params_text)
    yield first_run.project, first_run.states, scan_pipeline
    params.write_text(first_run.params_text)


def test_first_run_completes_every_stage(first_run):
    assert first_run.states == {stage: "Completed" for stage in UPSTREAM + DOWNSTREAM}


def test_same_params_and_seeds_give_byte_identical_metrics(first_run, tmp_path, monkeypatch):
    from flows.pipeline import scan_pipeline

    second = make_project(tmp_path / "second")
    monkeypatch.chdir(second)
    assert scan_pipeline() == {stage: "Completed" for stage in UPSTREAM + DOWNSTREAM}
    assert (second / "metrics/evaluate.json").read_bytes() == (first_run.outputs / "metrics/evaluate.json").read_bytes()


def test_unchanged_second_run_is_cached_and_param_change_reruns_from_its_stage(pipeline_project):
    project, _, scan_pipeline = pipeline_project
    scan_pipeline()  # up to date with the made params, whatever an earlier test left behind
    assert scan_pipeline() == {stage: "Cached" for stage in UPSTREAM + DOWNSTREAM}

    set_params(project, {"scan": {"entropy_weight": 3.0}})
    states = scan_pipeline()
    assert {stage: states[stage] for stage in UPSTREAM} == {stage: "Cached" for stage in UPSTREAM}
    assert {stage: states[stage] for stage in DOWNSTREAM} == {stage: "Completed" for stage in DOWNSTREAM}


def test_cached_result_with_missing_or_changed_output_is_recomputed(pipeline_project):
    project, _, scan_pipeline = pipeline_project
    scan_pipeline()
    (project / "artifacts/scan/model.pt").unlink()
    states = scan_pipeline()
    assert states["scan"] == "Completed" and states["mine"] == "Cached"
    assert (project / "artifacts/scan/model.pt").exists()

    neighbors_file = project / "artifacts/mine/neighbors.parquet"
    neighbors_file.write_bytes(neighbors_file.read_bytes() + b"tampered")
    states = scan_pipeline()
    assert states["embed"] == "Cached" and states["mine"] == "Completed"
    pd.read_parquet(neighbors_file)  # a whole, readable file again


def test_stage_artifacts_have_the_documented_form(first_run):
    project = first_run.outputs  # what the first run wrote, whatever tests changed since
    manifest = pd.read_parquet(project / "artifacts/prepare/manifest.parquet")
    assert len(manifest) == 1797 and {"index", "source", "label", "in_train", "in_eval", "content_hash"} <= set(manifest)
    images = np.load(project / "artifacts/prepare/images.npy")
    assert images.shape == (1797, 8, 8, 1) and images.dtype == np.uint8

    embeddings = np.load(project / "artifacts/embed/embeddings.npy")
    assert embeddings.shape == (1797, 128)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)

    neighbors = pd.read_parquet(project / "artifacts/mine/neighbors.parquet")
    assert dict(neighbors.dtypes.astype(str)) == {"anchor": "int64", "rank": "int32", "neighbor": "int64",
                                                   "similarity": "float32"}
    assert len(neighbors) == 1797 * 10 and not (neighbors["anchor"] == neighbors["neighbor"]).any()
    assert set(json.loads((project / "metrics/mine.json").read_text())["purity"]) == {"top1", "top5", "top10"}

    predictions = pd.read_parquet(project / "artifacts/selflabel/predictions.parquet")
    assert list(predictions.columns) == ["index", "source", "cluster", "confidence", "probs"]
    assert len(predictions) == 1797 and len(predictions["probs"].iloc[0]) == 10

    metrics = json.loads((project / "metrics/evaluate.json").read_text())
    for model in ("kmeans", "scan", "selflabel"):
        assert {"acc", "nmi", "ari", "health"} <= set(metrics[model])
    # The label-free health, recomputed here from the predictions and every mined pair
    # (digits: all images are training images, and anchors and neighbors are manifest rows).
    assert (manifest["index"].to_numpy() == np.arange(len(manifest))).all() and manifest["in_train"].all()
    for model in ("scan", "selflabel"):
        table = pd.read_parquet(project / f"artifacts/{model}/predictions.parquet").set_index("index")
        clusters, confidence = table["cluster"].to_numpy(), table["confidence"].to_numpy()
        shares = np.bincount(clusters, minlength=10) / len(clusters)
        shares = shares[shares > 0]
        health = metrics[model]["health"]
        expected = {
            "neighbor_agreement": (clusters[neighbors["anchor"]] == clusters[neighbors["neighbor"]]).mean(),
            "size_balance": -(shares * np.log(shares)).sum() / np.log(10),
            "mean_confidence": confidence.mean(),
            "confident_share": (confidence > 0.99).mean(),
        }
        for key, value in expected.items():
            assert health[key] == pytest.approx(value, abs=2e-6), (model, key)
    assert json.loads((project / "metrics/mine.json").read_text())["purity"]["top1"] > 0.8
    assert {"mean_confidence", "confident_share"} <= set(metrics["scan"]["health"])
    assert json.loads((project / "artifacts/scan/summary.json").read_text())["settings"]["epochs"] == 2
    assert json.loads((project / "artifacts/prepare/dataset.json").read_text())["image_size"] == 8  # auto
    assert metrics["split"] == "all"
    for picture in ("plots/confusion.png", "plots/cluster_sizes.png", "plots/training.png", "reports/prototypes.png"):
        assert (project / picture).read_bytes()[:4] == b"\x89PNG"
    report = (project / "reports/report.md").read_text()
    assert "| selflabel |" in report and "Label-free health" in report


def _hungarian_accuracy(clusters: np.ndarray, labels: np.ndarray) -> float:
    """Share of images whose cluster maps to their label under the best one-to-one mapping."""
    counts = np.zeros((clusters.max() + 1, labels.max() + 1), dtype=np.int64)
    np.add.at(counts, (clusters, labels), 1)
    rows, columns = linear_sum_assignment(counts, maximize=True)
    return counts[rows, columns].sum() / len(labels)


def test_the_tiny_digits_run_sorts_digits_far_better_than_chance(first_run):
    """ACC recomputed by hand from the predictions and the manifest's labels: it matches the
    metrics file and lies far above the same clusters scored against shuffled labels (~0.11).
    The tiny run scores about 0.8; a collapsed, scrambled or misaligned one stays near 0.1-0.2."""
    outputs = first_run.outputs
    metrics = json.loads((outputs / "metrics/evaluate.json").read_text())
    manifest = pd.read_parquet(outputs / "artifacts/prepare/manifest.parquet")
    evaluated = manifest[manifest["in_eval"]].set_index("index")["label"]
    for model in ("scan", "selflabel"):
        predictions = pd.read_parquet(outputs / f"artifacts/{model}/predictions.parquet")
        predictions = predictions[predictions["index"].isin(evaluated.index)]
        assert len(predictions) == metrics["num_images"] == len(evaluated)
        labels = evaluated.loc[predictions["index"]].to_numpy()
        clusters = predictions["cluster"].to_numpy()
        accuracy = _hungarian_accuracy(clusters, labels)
        assert metrics[model]["acc"] == pytest.approx(accuracy, abs=1e-6)
        chance = _hungarian_accuracy(clusters, np.random.default_rng(0).permutation(labels))
        assert chance < 0.2 and accuracy > 0.5, (model, accuracy, chance)
    assert metrics["kmeans"]["acc"] > 0.5


def test_collapsing_clusters_are_reported_in_log_and_metrics(pipeline_project, caplog):
    project, _, scan_pipeline = pipeline_project
    set_params(project, {"scan": {"entropy_weight": 0.0, "epochs": 3, "lr": 0.01}})
    states = scan_pipeline()
    assert states["scan"] == "Completed"
    scan_metrics = json.loads((project / "metrics/evaluate.json").read_text())["scan"]
    assert scan_metrics["nonempty_clusters"] < 10
    assert "clusters collapsed" in scan_metrics["warning"] and "scan.entropy_weight" in scan_metrics["warning"]
    assert any("clusters collapsed" in record.getMessage() for record in caplog.records)


def test_spectral_start_asks_for_its_own_sizes_and_says_so(pipeline_project, caplog):
    project, _, scan_pipeline = pipeline_project
    set_params(project, {"scan": {"init": "spectral", "cluster_sizes": "start"}})
    states = scan_pipeline()
    assert states["evaluate"] == "Completed"
    summary = json.loads((project / "artifacts/scan/summary.json").read_text())
    asked = summary["selection"]["cluster_sizes_asked"]
    assert summary["settings"]["init"] == "spectral" and len(asked) == 10
    assert asked == sorted(asked) and sum(asked) == pytest.approx(1.0, abs=1e-4)
    assert any("scan.init spectral: the first head starts from clusters of" in record.getMessage()
               for record in caplog.records)
    assert any("scan.cluster_sizes start: asked for cluster shares" in record.getMessage()
               for record in caplog.records)


def test_selflabel_without_confident_images_keeps_the_scan_model_and_warns(pipeline_project):
    project, _, scan_pipeline = pipeline_project
    # Random heads after two tiny epochs are far from sure; heads started from k-means are not.
    set_params(project, {"selflabel": {"threshold": 0.999999}, "scan": {"init": "random"}})
    states = scan_pipeline()
    assert states["selflabel"] == "Completed" and states["evaluate"] == "Completed"
    metrics = json.loads((project / "metrics/evaluate.json").read_text())
    assert "selflabel.threshold = 0.999999" in metrics["selflabel"]["warning"]
    scan_predictions = pd.read_parquet(project / "artifacts/scan/predictions.parquet")
    selflabel_predictions = pd.read_parquet(project / "artifacts/selflabel/predictions.parquet")
    assert scan_predictions["cluster"].tolist() == selflabel_predictions["cluster"].tolist()


def test_unlabeled_folder_gets_the_label_free_health_check(pipeline_project, tmp_path):
    from PIL import Image
    from sklearn.datasets import load_digits

    project, _, scan_pipeline = pipeline_project
    folder = tmp_path / "photos"
    folder.mkdir()
    digits = load_digits()
    for index in range(120):
        pixels = (digits.images[index] * (255 / 16)).round().astype(np.uint8)
        Image.fromarray(pixels).resize((16, 16)).save(folder / f"scan_{index:03d}.png")
    set_params(project, {"data": {"name": "folder", "root": str(folder)}})
    states = scan_pipeline()
    assert states["evaluate"] == "Completed"
    metrics = json.loads((project / "metrics/evaluate.json").read_text())
    assert "acc" not in metrics["scan"]
    for model in ("kmeans", "scan", "selflabel"):
        assert set(metrics[model]["health"]) >= {"neighbor_agreement", "size_balance"}
    assert json.loads((project / "artifacts/prepare/dataset.json").read_text())["image_size"] == 16
    report = (project / "reports/report.md").read_text()
    assert "no labels were found" in report
    assert "| kmeans |" in report and "| scan |" in report and "neighbor pairs in one cluster" in report
