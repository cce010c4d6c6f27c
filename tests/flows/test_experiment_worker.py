"""From the deployment to a laptop: a real Prefect server, a process work pool, the
deployment in prefect.yaml, a worker, and `scan-experiment` runs that become DVC experiments."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import make_project, run
from tests.flows.test_pipeline import _hungarian_accuracy


def _tool(name: str) -> str:
    return str(Path(sys.executable).parent / name)


@pytest.fixture
def worker_project(tmp_path: Path, prefect_api: str):
    """A git + DVC project with a git remote (a bare repository) and a local-folder DVC remote."""
    project = make_project(tmp_path / "project")
    (project / "prefect.yaml").write_text((Path(__file__).parents[2] / "prefect.yaml").read_text())
    run(["git", "init", "-q", "--bare", str(tmp_path / "origin.git")], tmp_path)
    for command in (["git", "init", "-q"], ["git", "config", "user.email", "t@example.com"],
                    ["git", "config", "user.name", "t"], ["dvc", "init", "-q"],
                    ["dvc", "remote", "add", "-d", "storage", str(tmp_path / "dvc-storage")],
                    ["git", "remote", "add", "origin", str(tmp_path / "origin.git")],
                    ["git", "add", "-A"], ["git", "commit", "-qm", "project"], ["git", "push", "-q", "origin", "HEAD"]):
        run(command, project)
    return project


@pytest.fixture
def worker(worker_project: Path):
    """A process worker on the pool `scan`, started in the project and stopped by its PID."""
    env = {**os.environ, "SCAN_PROJECT_DIR": str(worker_project), "PREFECT_WORKER_QUERY_SECONDS": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    run([_tool("prefect"), "work-pool", "create", "scan", "--type", "process", "--overwrite"], worker_project)
    run([_tool("prefect"), "--no-prompt", "deploy", "--all"], worker_project)
    log = open(worker_project.parent / "worker.log", "w")
    process = subprocess.Popen([_tool("prefect"), "worker", "start", "--pool", "scan"], cwd=worker_project, env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def test_scan_experiment_runs_on_a_worker_as_a_dvc_experiment_and_reaches_a_laptop(worker_project, worker, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
    from prefect.deployments import run_deployment

    started = time.monotonic()
    parameters = {"overrides": {"scan.entropy_weight": 3}, "name": "from-the-ui", "push": "origin"}
    first = run_deployment("scan-experiment/scan", parameters=parameters, timeout=0)
    second = run_deployment("scan-experiment/scan", parameters={"overrides": {"scan.entropy_weight": 3}}, timeout=0)
    with get_client(sync_client=True) as client:
        while True:
            runs = [client.read_flow_run(flow_run.id) for flow_run in (first, second)]
            if all(flow_run.state.is_final() for flow_run in runs):
                break
            assert time.monotonic() - started < 600, [flow_run.state for flow_run in runs]
            time.sleep(2)
        assert [flow_run.state.name for flow_run in runs] == ["Completed", "Completed"], \
            (worker_project.parent / "worker.log").read_text()[-3000:]
        first_run, second_run = sorted(runs, key=lambda flow_run: flow_run.start_time)
        assert second_run.start_time >= first_run.end_time  # one experiment at a time
        # The worker may take either submission first; the later one finds every stage in DVC's run cache.
        stages = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[first_run.id])))
        assert {flow_run.name for flow_run in stages} == {"prepare", "pretext", "embed", "mine", "scan", "selflabel",
                                                         "evaluate"}
        assert all(flow_run.state.is_completed() for flow_run in stages)

    shown = json.loads(subprocess.run([_tool("dvc"), "exp", "show", "--json"], cwd=worker_project, capture_output=True,
                                      text=True, check=True).stdout)
    experiments = {exp["name"]: exp for commit in shown for exp in (commit.get("experiments") or [])}
    assert "from-the-ui" in experiments
    shown_run = experiments["from-the-ui"]["revs"][0]["data"]
    assert shown_run["params"]["params.yaml"]["data"]["scan"]["entropy_weight"] == 3  # the UI's override ran
    metrics = shown_run["metrics"]["metrics/evaluate.json"]["data"]

    laptop = tmp_path / "laptop"
    run(["git", "clone", "-q", str(tmp_path / "origin.git"), str(laptop)], tmp_path)
    run(["dvc", "exp", "pull", "origin", "from-the-ui"], laptop)
    run(["dvc", "exp", "apply", "from-the-ui"], laptop)
    assert (laptop / "artifacts/selflabel/model.pt").stat().st_size > 0
    pulled = json.loads((laptop / "metrics/evaluate.json").read_text())  # dvc exp show leaves out lists
    assert all(pulled[model][key] == metrics[model][key] for model in ("kmeans", "scan", "selflabel")
               for key in ("acc", "nmi", "ari"))
    # The metrics dvc exp show lists are those of the artifacts that reached the laptop: ACC
    # recomputed there from each model's predictions and the manifest's labels.
    manifest = pd.read_parquet(laptop / "artifacts/prepare/manifest.parquet").set_index("index")
    for model in ("scan", "selflabel"):
        predictions = pd.read_parquet(laptop / f"artifacts/{model}/predictions.parquet")
        labels = manifest.loc[predictions["index"], "label"].to_numpy()
        accuracy = _hungarian_accuracy(predictions["cluster"].to_numpy(), labels)
        assert metrics[model]["acc"] == pytest.approx(accuracy, abs=1e-6), model
    assert metrics["scan"]["acc"] > 0.5
    assert time.monotonic() - started < 300
