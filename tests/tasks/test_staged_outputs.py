"""A stage's outputs appear all together or not at all, even when its process is killed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scan_core.machine import cpu_model
from tasks.common import StagedOutputs, digest_paths
from tests.conftest import make_project, set_params

# Runs the prepare stage's task function; with "kill" it dies by SIGKILL right after the
# manifest is written, before dataset.json: the middle of the stage's writes.
RUN_PREPARE = """
import os, signal, sys
import pandas as pd
from prefect.logging import disable_run_logger
from scan_core.config import load_params
from tasks.prepare import prepare
from tasks.stages import stage_params

if sys.argv[1] == "kill":
    write_parquet = pd.DataFrame.to_parquet
    def write_then_die(self, *args, **kwargs):
        write_parquet(self, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)
    pd.DataFrame.to_parquet = write_then_die
with disable_run_logger():
    prepare.fn(stage_params(load_params(), "prepare"), {})
"""


def _prepare(project: Path, mode: str) -> int:
    return subprocess.run([sys.executable, "-c", RUN_PREPARE, mode], cwd=project, capture_output=True).returncode


def test_a_prepare_killed_mid_write_leaves_the_old_outputs(tmp_path):
    project = make_project(tmp_path / "project")
    assert _prepare(project, "complete") == 0
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)
        old = digest_paths(["artifacts/prepare"])
    set_params(project, {"data": {"image_size": 6}})

    assert _prepare(project, "kill") == -9
    assert (project / "artifacts/.prepare.staging/manifest.parquet").exists()  # it died mid-write
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)
        assert digest_paths(["artifacts/prepare"]) == old

    assert _prepare(project, "complete") == 0
    assert not (project / "artifacts/.prepare.staging").exists()
    assert json.loads((project / "artifacts/prepare/dataset.json").read_text())["image_size"] == 6
    machine = json.loads((project / "artifacts/prepare/machine.json").read_text())
    assert machine["cpu"] == cpu_model() and machine["torch_threads"] >= 1 and "device" in machine


def test_a_first_prepare_killed_mid_write_leaves_no_outputs(tmp_path):
    project = make_project(tmp_path / "project")
    assert _prepare(project, "kill") == -9
    assert not (project / "artifacts/prepare").exists()
    result = subprocess.run([sys.executable, "-m", "flows", "pretext"], cwd=project, capture_output=True, text=True)
    assert result.returncode == 2 and "run it first (dvc repro prepare)" in result.stderr


def test_outputs_are_published_together_and_stale_ones_removed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("artifacts/stage").mkdir(parents=True)
    Path("artifacts/stage/old.txt").write_text("old")
    Path("plots").mkdir()
    Path("plots/old.png").write_text("old")
    Path("artifacts/.stage.staging").mkdir()
    Path("artifacts/.stage.staging/left-by-a-killed-run.txt").write_text("x")

    staged = StagedOutputs(("artifacts/stage", "metrics/stage.json", "plots"))
    assert not Path("artifacts/.stage.staging").exists()
    staged(Path("artifacts/stage/new.txt")).write_text("new")
    staged("metrics/stage.json").write_text("{}")
    with pytest.raises(ValueError, match="not among this stage's declared outputs"):
        staged("artifacts/other/file.txt")
    assert Path("artifacts/stage/old.txt").exists() and not Path("metrics/stage.json").exists()

    staged.publish()
    assert sorted(path.name for path in Path("artifacts/stage").iterdir()) == ["new.txt"]
    assert Path("metrics/stage.json").read_text() == "{}"
    assert not Path("plots").exists()  # declared but not written this time: the old copy was stale
    assert not list(Path("artifacts").glob(".*"))
