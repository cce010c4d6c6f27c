"""The SCAN pipeline as Prefect flows: every stage a cached task, run in order."""

from __future__ import annotations

import importlib
import json

from prefect import flow, get_run_logger

from scan_core.config import Params, check_against_data, load_params
from tasks.common import (Digests, current_outputs, outputs_intact, read_record, require_outputs, source_inputs,
                          stage_key)
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


def run_stage(stage: str, params_subset: dict, inputs: dict[str, Digests]) -> tuple[str, Digests]:
    """Run one stage's task; its cached result is reused only while its outputs are intact.

    Returns the task's final state name ("Completed" or "Cached") and the digests of the
    outputs in this project (a cached result may have been stored by another checkout).
    """
    refresh = not outputs_intact(stage, stage_key(stage, params_subset, inputs))
    state = stage_task(stage).with_options(refresh_cache=refresh)(params_subset, inputs, return_state=True)
    state.result()  # raises the stage's error
    return state.name, read_record(stage)["outputs"]


@flow(name="scan-pipeline", log_prints=True)
def scan_pipeline(params_file: str = "params.yaml", stop_after: str = "evaluate") -> dict[str, str]:
    """prepare -> pretext -> embed -> mine -> scan -> selflabel -> evaluate.

    Returns each stage's final state name; unchanged stages come back "Cached".
    """
    params = load_params(params_file)
    outputs: dict[str, Digests] = {}
    states: dict[str, str] = {}
    for stage, spec in STAGES.items():
        subset = stage_params(params, stage)
        inputs = {upstream: outputs[upstream] for upstream in spec.inputs} | source_inputs(stage, subset)
        states[stage], outputs[stage] = run_stage(stage, subset, inputs)
        if stage == "prepare":
            check_params_against_data(params)
        if stage == stop_after:
            break
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

