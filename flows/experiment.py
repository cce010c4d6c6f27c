"""The flow ``scan-experiment``: one DVC experiment as one Prefect run.

Started from the UI's run form, from ``prefect deployment run``, or on a worker, it runs
``dvc exp run -S key=value ...`` in the checkout it runs in. DVC decides which stages are
out of date and runs each as ``python -m flows <stage>``; those stage runs appear in the UI
as child runs of this one, with their live logs. When it ends, ``dvc exp show`` in that
checkout lists the experiment with its metrics; with ``push`` set, the experiment (its git
ref and its cached outputs) goes to that git remote and the default DVC remote, from where
``dvc exp pull`` brings it to a laptop.

A retry of a failed run starts ``dvc exp run`` again with the same overrides: the stages
that finished are up to date for DVC and are skipped, the failed one and those after it
run. Two experiments in one checkout never run at once: a second one waits for the lock.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

from filelock import FileLock
from prefect import flow, get_run_logger
from prefect.context import get_run_context

from flows import PARENT_RUN_ENV
from scan_core.config import ParamsError, known_keys
LOCK_FILE = Path(".scan_cache/locks/experiment.lock")
METRICS_FILE = Path("metrics/evaluate.json")


def override_text(key: str, value: Any) -> str:
    """``key=value`` as ``-S`` takes it: strings as they are, everything else as JSON (YAML reads both)."""
    return f"{key}={value if isinstance(value, str) else json.dumps(value)}"


def dvc_command(overrides: dict[str, Any], name: str | None) -> list[str]:
    """``dvc exp run`` with one ``-S key=value`` per override; unknown keys stop here, in one line."""
    keys = known_keys()
    command = ["dvc", "exp", "run"]
    for key, value in overrides.items():
        if key not in keys:
            raise ParamsError(f"unknown params key {key!r} in overrides; known keys: {', '.join(keys)}")
        command += ["-S", override_text(key, value)]
    return command + (["-n", name] if name else [])


PROGRESS_EVERY_S = 30.0


def _stream(command: list[str], env: dict[str, str]) -> tuple[int, list[str]]:
    """Run ``command``, passing each output line to the run's log as it comes. A training
    stage's progress bar redraws many times a second: one state of it every
    ``PROGRESS_EVERY_S`` reaches this log (the stage's own run shows it whole)."""
    logger = get_run_logger()
    lines: list[str] = []
    last_bar = 0.0
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as process:
        assert process.stdout is not None
        for line in process.stdout:
            for part in line.rstrip("\n").split("\r"):  # progress bars redraw with \r
                if not part.strip():
                    continue
                lines.append(part)
                if not part.lstrip().startswith(("pretext:", "scan:", "selflabel:")):
                    logger.info(part)
                elif time.monotonic() - last_bar >= PROGRESS_EVERY_S:
                    last_bar = time.monotonic()
                    logger.info(part.strip())
    return process.returncode, lines


@flow(name="scan-experiment", log_prints=True)
def scan_experiment(overrides: dict[str, Any] | None = None, name: str | None = None,
                    push: str | None = None) -> dict[str, Any]:
    """Run ``dvc exp run -S key=value ...`` here; return the experiment's name and metrics.

    ``overrides`` maps params keys to values, e.g. ``{"scan.entropy_weight": 3}``; ``name``
    names the experiment (DVC picks one otherwise); ``push`` is a git remote to push it to.
    """
    logger = get_run_logger()
    command = dvc_command(overrides or {}, name)
    env = {**os.environ, PARENT_RUN_ENV: str(get_run_context().flow_run.id)}
    LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(LOCK_FILE):
        logger.info("running %s", " ".join(command))
        code, lines = _stream(command, env)
        if code != 0:
            raise RuntimeError(f"{' '.join(command)} failed with exit code {code}: " + " | ".join(lines[-5:]))
        ran = [match.group(1) for line in lines if (match := re.search(r"Ran experiment\(s\): (\S+)", line))]
        experiment = ran[-1] if ran else name
        if push and experiment:
            code, lines = _stream(["dvc", "exp", "push", push, experiment], env)
            if code != 0:
                raise RuntimeError(f"dvc exp push {push} {experiment} failed: " + " | ".join(lines[-5:]))
    metrics = json.loads(METRICS_FILE.read_text()) if METRICS_FILE.exists() else {}
    summary = {"experiment": experiment, "overrides": overrides or {},
               **{model: {key: metrics[model][key] for key in ("acc", "nmi", "ari") if key in metrics[model]}
                  for model in ("kmeans", "scan", "selflabel") if isinstance(metrics.get(model), dict)}}
    logger.info("experiment %s: %s", experiment, json.dumps(summary))
    return summary


def run_stage_in_experiment(parent_flow_run_id: str, stage: str, params_file: str) -> str:
    """Run one stage's flow as a child run of the experiment's flow run. DVC starts the stage
    in another process, so Prefect cannot link the two by itself: a tracking task run in the
    experiment's run stands for the stage, as Prefect does for a subflow."""
    from uuid import UUID, uuid4

    from prefect import Task
    from prefect.client.orchestration import get_client
    from prefect.flow_engine import run_flow
    from prefect.states import Completed, Failed, Running

    from flows.pipeline import scan_stage

    parameters = {"stage": stage, "params_file": params_file}
    with get_client(sync_client=True) as client:
        tracker = client.create_task_run(Task(fn=scan_stage.fn, name=stage), flow_run_id=UUID(parent_flow_run_id),
                                         dynamic_key=f"{stage}-{uuid4().hex[:8]}", name=stage, state=Running())
        flow_run = client.create_flow_run(scan_stage, name=stage, parameters=scan_stage.serialize_parameters(parameters),
                                          parent_task_run_id=tracker.id)
        state = run_flow(scan_stage, flow_run=flow_run, parameters=parameters, return_type="state")
        client.set_task_run_state(tracker.id, Completed() if state.is_completed() else Failed(message=state.message),
                                  force=True)
    return state.result()


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["scan.entropy_weight=2"]`` to ``{"scan.entropy_weight": 2}``: each value is read as
    YAML, as ``dvc exp run -S`` reads it; a pair without ``=`` or with an unknown key stops here."""
    import yaml

    keys = known_keys()
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise ParamsError(f"-S {pair!r} is not key=value (for example -S scan.entropy_weight=2)")
        if key not in keys:
            raise ParamsError(f"unknown params key {key!r} in -S {pair}; known keys: {', '.join(keys)}")
        overrides[key] = yaml.safe_load(value) if value else ""
    return overrides


def main(argv: list[str] | None = None) -> int:
    """``python -m flows.experiment [-S key=value]... [-n NAME] [--push REMOTE]``: one
    ``scan-experiment`` flow run here (what the deployment runs on a worker)."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m flows.experiment", description=main.__doc__)
    parser.add_argument("-S", "--set", dest="pairs", action="append", default=[], metavar="KEY=VALUE",
                        help="a params override, as in dvc exp run -S (repeatable)")
    parser.add_argument("-n", "--name", default=None, help="the experiment's name (DVC picks one otherwise)")
    parser.add_argument("--push", default=None, help="a git remote to push the experiment to")
    args = parser.parse_args(argv)
    try:
        overrides = parse_overrides(args.pairs)
        scan_experiment(overrides=overrides, name=args.name, push=args.push)
    except ParamsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
