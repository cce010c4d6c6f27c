"""The SCAN pipeline as Prefect flows: every stage a cached task, run in order."""

from __future__ import annotations

import importlib
import json
import subprocess
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.results import get_result_store

from scan_core.config import Params, check_against_data, load_params
from tasks.common import (Digests, current_outputs, outputs_intact, read_record, require_outputs, source_inputs,
                          stage_key, write_record)
from tasks.paths import DATASET_FILE
from tasks.stages import STAGES, stage_params


def stage_task(stage: str):
    """The stage's Prefect task, imported on demand: a run of one stage loads only its code."""
    return getattr(importlib.import_module(f"tasks.{stage}"), stage)


def check_params_against_data(params: Params) -> None:
    """Size-dependent limits (mine.topk, scan.num_clusters) once prepare has counted the images."""
    check_against_data(params, json.loads(DATASET_FILE.read_text())["num_train"])


def check_ready(stage: str, params: Params) -> None:
    """What a stage run on its own needs, checked before any flow starts (so that the user
    reads one line, not a traceback): its upstream outputs, and params within the data's size."""
    if stage != "prepare":
        require_outputs("prepare")
        check_params_against_data(params)
    for upstream in STAGES[stage].inputs:
        require_outputs(upstream)


def dvc_skips() -> set[str] | None:
    """The stages DVC would skip now (dvc.lock matches their params, code, inputs and
    outputs); None outside a DVC repository or when DVC cannot tell."""
    if not Path(".dvc").is_dir():
        return None
    result = subprocess.run(["dvc", "status", "--json"], capture_output=True, text=True)
    if result.returncode != 0:
        return None
    changed = {name.split(":")[-1] for name in json.loads(result.stdout.strip() or "{}")}
    return {stage for stage in STAGES if stage not in changed}


def adopt_dvc_verdict(stage: str, key: str) -> None:
    """Make a stage DVC holds up to date a cache hit for Prefect too (a fresh clone after
    ``dvc pull`` has DVC's records but not Prefect's): store its outputs as the cached
    result under its key, and record them."""
    outputs = current_outputs(stage)
    get_result_store().update_for_task(stage_task(stage)).write(obj=outputs, key=key)
    write_record(stage, key, outputs)


def run_stage(stage: str, params_subset: dict, inputs: dict[str, Digests],
              dvc_would_skip: bool | None = None) -> tuple[str, Digests]:
    """Run one stage's task and return its final state name ("Completed" or "Cached") and
    the digests of its outputs in this project.

    In a DVC repository DVC's verdict decides: a stage DVC would skip finishes Cached, one
    DVC would run is computed again. Elsewhere a cached result is reused only while the
    stage's outputs on disk are the ones it recorded.
    """
    key = stage_key(stage, params_subset, inputs)
    if dvc_would_skip:
        adopt_dvc_verdict(stage, key)
    refresh = not dvc_would_skip if dvc_would_skip is not None else not outputs_intact(stage, key)
    state = stage_task(stage).with_options(refresh_cache=refresh)(params_subset, inputs, return_state=True)
    state.result()  # raises the stage's error
    return state.name, read_record(stage)["outputs"]


@flow(name="scan-pipeline", log_prints=True)
def scan_pipeline(params_file: str = "params.yaml", stop_after: str = "evaluate") -> dict[str, str]:
    """prepare -> pretext -> embed -> mine -> scan -> selflabel -> evaluate.

    Returns each stage's final state name; unchanged stages come back "Cached". In a DVC
    repository "unchanged" is DVC's verdict, and dvc.lock is updated afterwards, so the two
    never disagree about what is up to date.
    """
    params = load_params(params_file)
    skips = dvc_skips()
    outputs: dict[str, Digests] = {}
    states: dict[str, str] = {}
    for stage, spec in STAGES.items():
        subset = stage_params(params, stage)
        inputs = {upstream: outputs[upstream] for upstream in spec.inputs} | source_inputs(stage, subset)
        upstream_ran = any(states[name] != "Cached" for name in spec.inputs)
        verdict = None if skips is None else stage in skips and not upstream_ran
        states[stage], outputs[stage] = run_stage(stage, subset, inputs, verdict)
        if stage == "prepare":
            check_params_against_data(params)
        if stage == stop_after:
            break
    if skips is not None and any(state != "Cached" for state in states.values()):
        subprocess.run(["dvc", "commit", "--force", "--quiet"], check=True)  # dvc.lock agrees with what ran
    get_run_logger().info("stage states: %s", states)
    return states


@flow(name="scan-stage", flow_run_name="{stage}", log_prints=True)
def scan_stage(stage: str, params_file: str = "params.yaml") -> str:
    """Run a single stage against the outputs its upstream stages left on disk."""
    params = load_params(params_file)
    check_ready(stage, params)
    subset = stage_params(params, stage)
    inputs = {upstream: current_outputs(upstream) for upstream in STAGES[stage].inputs}
    state, _ = run_stage(stage, subset, inputs | source_inputs(stage, subset))
    return state

