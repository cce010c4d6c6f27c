"""Retry from the UI, proven: a `scan-experiment` run that failed part way, retried the way the
UI's Retry button does it, runs `dvc exp run` again with the same overrides, skips the stages
that had finished and completes (a real server, a process work pool, the project's own
prefect.yaml, a worker)."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.flows.test_cli import (DOWNSTREAM, TINY, UPSTREAM, code_digest, experiments, skip_if_code_changed,
                                  write_colour_folder)
from tests.flows.test_experiment_worker import worker  # noqa: F401  (the worker fixture, on this module's project)

OVERRIDES = {"scan.entropy_weight": 2}
# What the Retry button of the Prefect 3 UI sends: POST /api/flow_runs/{id}/set_state with this
# state and force true (the default, V2 UI's RetryFlowRunDialog, prefect/server/ui-v2; the V1
# UI's FlowRunRetryModal sends the same state with force false).
RETRY_STATE = {"type": "SCHEDULED", "name": "AwaitingRetry", "message": "Retry from the UI"}


@pytest.fixture
def worker_project(tmp_path: Path, prefect_api: str) -> Path:
    """A project as `scan cluster colours --clusters 3 -S ...` makes it (before it runs), whose
    scan stage cannot read its resume checkpoint: a directory stands where
    ``.scan_cache/checkpoints/scan.pt`` goes. (Tests run as root, which reads a chmod 000
    file all the same; nothing reads a directory as a file.) prepare, pretext, embed and mine
    never look there, so they finish before scan fails."""
    from flows.project import create_project

    images = write_colour_folder(tmp_path / "colours")
    project = tmp_path / "scan-colours"
    create_project(project, {"data.name": "folder", "data.root": str(images), "scan.num_clusters": 3, **TINY})
    (project / ".scan_cache/checkpoints/scan.pt").mkdir(parents=True)
    return project


def wait_until_final(client, flow_run_id, timeout_s: float = 240):
    deadline = time.monotonic() + timeout_s
    while not (flow_run := client.read_flow_run(flow_run_id)).state.is_final():
        assert time.monotonic() < deadline, flow_run.state
        time.sleep(2)
    return flow_run


def stage_runs(client, flow_run_id, since: datetime) -> dict[str, str]:
    """The stage runs (child flow runs) of ``flow_run_id`` started after ``since``: name to state."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId, FlowRunFilterStartTime

    children = client.read_flow_runs(flow_run_filter=FlowRunFilter(
        parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id]),
        start_time=FlowRunFilterStartTime(after_=since)))
    return {child.name: child.state.name for child in children}


def log_lines(client, flow_run_id, since: datetime, last: str, timeout_s: float = 60) -> list[str]:
    """The flow run's log messages after ``since``, once the one containing ``last`` has arrived
    (logs reach the API in batches, the last ones when the run's process exits)."""
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId, LogFilterTimestamp
    from prefect.client.schemas.sorting import LogSort

    log_filter = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]), timestamp=LogFilterTimestamp(after_=since))
    deadline = time.monotonic() + timeout_s
    while True:
        messages: list[str] = []
        while page := client.read_logs(log_filter=log_filter, limit=200, offset=len(messages),
                                       sort=LogSort.TIMESTAMP_ASC):
            messages += [log.message for log in page]
        if any(last in message for message in messages) or time.monotonic() > deadline:
            return messages
        time.sleep(2)


def test_a_failed_experiment_retried_as_the_ui_does_reruns_only_the_failed_stage_and_those_after_it(
        worker_project, worker):
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    started = time.monotonic()
    code_before = code_digest()
    submitted = datetime.now(timezone.utc)
    flow_run = run_deployment("scan-experiment/scan", parameters={"overrides": OVERRIDES}, timeout=0)
    with get_client(sync_client=True) as client:
        failed = wait_until_final(client, flow_run.id)
        assert failed.state.name == "Failed", (worker_project.parent / "worker.log").read_text()[-3000:]
        assert stage_runs(client, flow_run.id, submitted) == {**{stage: "Completed" for stage in UPSTREAM},
                                                              "scan": "Failed"}
        first_log = log_lines(client, flow_run.id, submitted, last="failed to reproduce 'scan'")
        assert any("Is a directory" in message and "scan.pt" in message for message in first_log)
        assert not any("Running stage 'selflabel'" in message for message in first_log)
        assert "running dvc exp run -S scan.entropy_weight=2" in first_log

        (worker_project / ".scan_cache/checkpoints/scan.pt").rmdir()  # the repair
        retried = datetime.now(timezone.utc)
        answer = client.request("POST", "/flow_runs/{id}/set_state", path_params={"id": flow_run.id},
                                json={"state": RETRY_STATE, "force": True}).json()  # the button's request body
        assert answer["status"] == "ACCEPT", answer
        done = wait_until_final(client, flow_run.id)
        assert done.state.name == "Completed", (worker_project.parent / "worker.log").read_text()[-3000:]
        assert done.run_count == 2 and done.parameters["overrides"] == OVERRIDES
        skip_if_code_changed(code_before)

        assert stage_runs(client, flow_run.id, retried) == {stage: "Completed" for stage in DOWNSTREAM}
        retry_log = log_lines(client, flow_run.id, retried, last="Ran experiment(s)")
        assert "running dvc exp run -S scan.entropy_weight=2" in retry_log  # the same overrides
        for stage in UPSTREAM:
            assert f"Stage '{stage}' didn't change, skipping" in retry_log
        for stage in DOWNSTREAM:
            assert f"Running stage '{stage}':" in retry_log
        assert any("Ran experiment(s): " in message for message in retry_log)

    (experiment,) = experiments(worker_project).values()  # the retried run is one DVC experiment
    data = experiment["revs"][0]["data"]
    assert data["params"]["params.yaml"]["data"]["scan"]["entropy_weight"] == 2
    assert 0.0 < data["metrics"]["metrics/evaluate.json"]["data"]["selflabel"]["acc"] <= 1.0
    assert time.monotonic() - started < 300
