"""Shared fixtures: one temporary Prefect API for the session, tiny project copies."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
_PREFECT_HOME = tempfile.mkdtemp(prefix="scan-tests-prefect-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"] = os.path.join(_PREFECT_HOME, "results")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

# Small enough to run every stage in seconds on a CPU, large enough to exercise them all.
TINY_PARAMS = {
    "pretext": {"epochs": 2, "batch_size": 128},
    "mine": {"topk": 10},
    "scan": {"num_neighbors": 5, "epochs": 2, "batch_size": 128},
    "selflabel": {"epochs": 1, "batch_size": 256, "threshold": 0.5},
    "evaluate": {"prototypes": 2},
}
COPIED = ("scan_core", "tasks", "flows", "data", "weights", "dvc.yaml", "params.yaml", "pyproject.toml")


@pytest.fixture(scope="session")
def prefect_api() -> str:
    """A temporary Prefect server for the whole session; its URL is exported for subprocesses."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        url = PREFECT_API_URL.value()
        os.environ["PREFECT_API_URL"] = url
        yield url
        os.environ.pop("PREFECT_API_URL", None)


def set_params(project: Path, updates: dict[str, dict]) -> None:
    import yaml  # here, so that `pytest -m gpu` runs where only torch's stack is installed

    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for group, values in updates.items():
        params.setdefault(group, {}).update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def make_project(destination: Path) -> Path:
    """A copy of the project's code and config with tiny params, as its own git + DVC repo."""
    for name in COPIED:
        source = PROJECT_ROOT / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, destination / name)
    set_params(destination, TINY_PARAMS)
    return destination


def run(command: list[str], cwd: Path) -> str:
    """Run a command in ``cwd`` with the test venv's tools first on PATH; return its output."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{output[-4000:]}"
    return output


@pytest.fixture
def tiny_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    project = make_project(tmp_path / "project")
    monkeypatch.chdir(project)
    return project


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` need CUDA: skipped, with the reason shown, where there is none."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (pytest -m gpu on a GPU machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
