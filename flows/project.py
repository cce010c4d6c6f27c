"""A project folder for one set of images: what ``scan cluster`` makes, and reuses on later runs.

It is a git + DVC repository laid out like this one: its own ``params.yaml``, a ``dvc.yaml``
generated from the installed package's stage table, a ``prefect.yaml`` for the worker
deployment, ``weights/``. Its stages run the installed package (``python -m flows <stage>``)
and list the package's own files as their code dependencies (absolute paths), so upgrading
the package reruns exactly the stages whose code changed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from flows.dvc_file import render
from scan_core.config import PARAMS_YAML_HEADER, default_params_yaml
from scan_core.names import WEIGHTS_DIR
from tasks.stages import PROJECT_ROOT

DVC_HEADER = ("# Written by `scan cluster` from the installed scan-pipeline's stage table (tasks/stages.py);\n"
              "# its code deps are that package's files, so upgrading it reruns the stages whose code changed.\n")
GITIGNORE = """\
/.scan_cache/
/clusters/
.*.staging
.*.retired
/weights/*
!/weights/README.md
"""
WEIGHTS_README = ("Pretrained backbone weights (`pretext.weights: weights/<file>`). `scan cluster --weights FILE`\n"
                  "copies FILE here. dvc.yaml lists this folder as a dependency of the pretext stage.\n")
GIT_IDENTITY = {"user.name": "scan", "user.email": "scan@localhost"}
DVC_CONFIG = {"core.autostage": "true", "core.analytics": "false"}


class ProjectError(ValueError):
    """The project folder cannot be made or used; printed as one ``error:`` line."""


def tool_env() -> dict[str, str]:
    """The environment for git, dvc and the stages: this interpreter's scripts first on PATH,
    so ``python -m flows`` in dvc.yaml runs the package that made the project."""
    scripts = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": os.pathsep.join([scripts, os.environ.get("PATH", "")])}


def run_tool(command: list[str], cwd: Path) -> str:
    result = subprocess.run(command, cwd=cwd, env=tool_env(), capture_output=True, text=True)
    if result.returncode != 0:
        raise ProjectError(f"`{' '.join(command)}` failed in {cwd}: {(result.stderr or result.stdout).strip()}")
    return result.stdout


def prefect_text() -> str:
    """The worker deployment of this project: the installed flow file, run in this folder."""
    entrypoint = (PROJECT_ROOT / "flows" / "experiment.py").as_posix() + ":scan_experiment"
    document = {
        "name": "scan-project",
        "pull": [{"prefect.deployments.steps.set_working_directory": {"directory": "{{ $SCAN_PROJECT_DIR }}"}}],
        "deployments": [{"name": "scan", "entrypoint": entrypoint, "parameters": {"overrides": {}},
                         "concurrency_limit": 1, "work_pool": {"name": "scan"},
                         "description": "One DVC experiment (dvc exp run -S key=value ...) in this project."}],
    }
    return ("# prefect work-pool create scan --type process; prefect --no-prompt deploy --all;\n"
            "# SCAN_PROJECT_DIR=$PWD prefect worker start --pool scan\n" + yaml.safe_dump(document, sort_keys=False))


def write_generated(directory: Path) -> None:
    """The files the installed package generates: ``dvc.yaml`` (its stage table) and ``prefect.yaml``."""
    (directory / "dvc.yaml").write_text(render(code_root=PROJECT_ROOT, header=DVC_HEADER))
    (directory / "prefect.yaml").write_text(prefect_text())


def is_project(directory: Path) -> bool:
    return (directory / ".dvc").is_dir() and (directory / "dvc.yaml").is_file() and (directory / ".git").exists()


def _commit(directory: Path, message: str, paths: list[str]) -> None:
    run_tool(["git", "add", "--", *paths], directory)
    if run_tool(["git", "status", "--porcelain", "--", *paths], directory).strip():
        run_tool(["git", "commit", "-q", "-m", message, "--", *paths], directory)


def create_project(directory: Path, overrides: dict[str, Any]) -> None:
    """Make ``directory`` a git + DVC project for ``overrides`` (``data.*`` and the options given)."""
    text = default_params_yaml(overrides)
    if directory.exists() and any(directory.iterdir()):
        raise ProjectError(f"{directory} exists and is not a scan project (no .git, .dvc and dvc.yaml); "
                           "pass --project with a new or empty folder")
    directory.mkdir(parents=True, exist_ok=True)
    run_tool(["git", "init", "-q"], directory)
    for key, value in GIT_IDENTITY.items():  # commits need an identity; the user's own wins where set
        if subprocess.run(["git", "config", key], cwd=directory, capture_output=True).returncode != 0:
            run_tool(["git", "config", key, value], directory)
    run_tool([sys.executable, "-m", "dvc", "init", "-q"], directory)
    for key, value in DVC_CONFIG.items():
        run_tool([sys.executable, "-m", "dvc", "config", key, value], directory)
    (directory / "params.yaml").write_text(text)
    (directory / ".gitignore").write_text(GITIGNORE)
    (directory / WEIGHTS_DIR).mkdir(exist_ok=True)
    (directory / WEIGHTS_DIR / "README.md").write_text(WEIGHTS_README)
    write_generated(directory)
    _commit(directory, "scan cluster: new project", [".gitignore", ".dvc", ".dvcignore", "params.yaml",
                                                     "dvc.yaml", "prefect.yaml", f"{WEIGHTS_DIR}/README.md"])


def refresh_project(directory: Path) -> None:
    """Before a later run: ``dvc.yaml`` and ``prefect.yaml`` follow the installed package (a new
    version may import other files), and ``params.yaml`` goes back to the project's committed
    values, so that each run is those values plus the options of its own command."""
    write_generated(directory)
    _commit(directory, "scan cluster: dvc.yaml for the installed package", ["dvc.yaml", "prefect.yaml"])
    run_tool(["git", "checkout", "-q", "HEAD", "--", "params.yaml"], directory)
    complete_params(directory)


def complete_params(directory: Path) -> list[str]:
    """Add to the project's ``params.yaml`` the keys a newer package knows and it lacks, at their
    defaults, and commit it: ``dvc.yaml`` names them as params and ``-S`` can only set keys the
    file has. The project's own values stay as they are. Returns the keys added."""
    path = directory / "params.yaml"
    current = yaml.safe_load(path.read_text()) or {}
    defaults = yaml.safe_load(default_params_yaml())
    missing = [f"{group}.{key}" for group, keys in defaults.items() for key in keys
               if key not in (current.get(group) or {})]
    if not missing:
        return []
    completed = {group: {**keys, **(current.get(group) or {})} for group, keys in defaults.items()}
    completed.update({group: keys for group, keys in current.items() if group not in completed})
    path.write_text(PARAMS_YAML_HEADER + yaml.safe_dump(completed, sort_keys=False, default_flow_style=False,
                                                        allow_unicode=True, width=4096))
    _commit(directory, f"scan cluster: params.yaml gains {', '.join(missing)} (the installed package's defaults)",
            ["params.yaml"])
    return missing


def project_root_of(directory: Path) -> Path:
    """The data folder a project was made for (its committed ``data.root``)."""
    committed = run_tool(["git", "show", "HEAD:params.yaml"], directory)
    return Path((yaml.safe_load(committed) or {}).get("data", {}).get("root", ""))
