"""`scan cluster IMAGES`: one command makes a git + DVC project for a folder, runs the pipeline
there as a DVC experiment, lays the clusters out and prints the scores; run again with other
options it is another experiment that reruns only the stages those options reach; bad
arguments stop it in one `error:` line before any project is made."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import yaml
from PIL import Image

# Tiny values that run all seven stages in a minute or two on a CPU.
TINY = {"pretext.epochs": 2, "scan.epochs": 2, "selflabel.epochs": 1, "mine.topk": 10, "scan.num_neighbors": 5,
        "evaluate.prototypes": 2, "selflabel.threshold": 0.5}
TINY_OPTIONS = [f"-S{key}={value}" for key, value in TINY.items()]
UPSTREAM = ("prepare", "pretext", "embed", "mine")
DOWNSTREAM = ("scan", "selflabel", "evaluate")
COLOURS = ((220, 40, 40), (40, 200, 60), (50, 70, 230))


def write_colour_folder(root: Path, per_class: int = 40) -> Path:
    """``per_class`` noisy 16 x 16 PNGs of one colour in each of three class subfolders."""
    rng = np.random.default_rng(0)
    for label, colour in enumerate(COLOURS):
        (root / f"class{label}").mkdir(parents=True)
        for index in range(per_class):
            pixels = np.clip(np.array(colour) + rng.normal(0, 25, (16, 16, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, "RGB").save(root / f"class{label}" / f"{index:02d}.png")
    return root


def tool(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def scan(*arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    """The ``scan`` console script of this venv, as a user runs it (PREFECT_API_URL passes through)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run([tool("scan"), *arguments], cwd=cwd, env=env, capture_output=True, text=True)


def experiments(project: Path) -> dict[str, dict]:
    """What ``dvc exp show --json`` lists in ``project``: experiment name to its entry."""
    shown = json.loads(subprocess.run([tool("dvc"), "exp", "show", "--json"], cwd=project, capture_output=True,
                                      text=True, check=True).stdout)
    return {exp["name"]: exp for commit in shown for exp in (commit.get("experiments") or [])}


def stage_runs_since(started: datetime, flow_name: str = "scan-experiment") -> dict[str, dict[str, str]]:
    """For each ``flow_name`` run started after ``started``: its stage runs (child flow runs), name to state."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (FlowFilter, FlowFilterName, FlowRunFilter,
                                                FlowRunFilterParentFlowRunId, FlowRunFilterStartTime)

    with get_client(sync_client=True) as client:
        parents = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
                                        flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(after_=started)))
        return {str(parent.id): {child.name: child.state.name for child in client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent.id])))}
            for parent in parents}


def code_digest() -> str:
    """One digest of the package files a project's dvc.yaml lists as code deps."""
    from flows.dvc_file import render
    from tasks.stages import PROJECT_ROOT

    stages = yaml.safe_load(render(code_root=PROJECT_ROOT))["stages"]
    digest = hashlib.sha256()
    for path in sorted({dep for stage in stages.values() for dep in stage["deps"] if dep.endswith(".py")}):
        digest.update(path.encode() + b"\0" + Path(path).read_bytes())
    return digest.hexdigest()


def skip_if_code_changed(before: str) -> None:
    """The stages' code is the installed package: where it was edited while the test ran
    (an editable install in a checkout someone works in), DVC rightly reruns its stages."""
    if code_digest() != before:
        pytest.skip("the installed package's code changed while this test ran, so DVC reran its stages")


def failure(result: subprocess.CompletedProcess) -> str:
    return f"exit code {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


class FirstRun(NamedTuple):
    images: Path
    project: Path
    result: subprocess.CompletedProcess
    started: datetime
    code_before: str  # code_digest() before it ran


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory, prefect_api: str):
    """``scan cluster colours --project DIR --clusters 3 -S ...`` once, for the whole module."""
    root = tmp_path_factory.mktemp("cli")
    images = write_colour_folder(root / "colours")
    project = root / "scan-colours"
    started, code_before = datetime.now(timezone.utc), code_digest()
    result = scan("cluster", str(images), "--project", str(project), "--clusters", "3", *TINY_OPTIONS, cwd=root)
    assert result.returncode == 0, failure(result)
    return FirstRun(images, project, result, started, code_before)


@pytest.fixture(scope="module")
def second_run(first_run):
    """The same command again on the same project with one SCAN option changed."""
    lock_before = yaml.safe_load((first_run.project / "dvc.lock").read_text())
    started = datetime.now(timezone.utc)
    result = scan("cluster", str(first_run.images), "--project", str(first_run.project), "-S",
                  "scan.entropy_weight=2", cwd=first_run.project.parent)
    assert result.returncode == 0, failure(result)
    return result, lock_before, started


def test_cluster_makes_a_dvc_project_runs_it_and_lays_the_clusters_out(first_run):
    from tasks.stages import PROJECT_ROOT

    images, project, result, started, _ = first_run
    assert (project / ".git").exists() and (project / ".dvc").is_dir()
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert params["data"]["name"] == "folder" and params["data"]["root"] == str(images.resolve())
    assert params["scan"]["num_clusters"] == 3
    assert params["pretext"]["epochs"] == 2 and params["mine"]["topk"] == 10

    stages = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]
    assert set(stages) == {*UPSTREAM, *DOWNSTREAM}
    package = PROJECT_ROOT.resolve()
    for name, stage in stages.items():
        code = [Path(dep) for dep in stage["deps"] if dep.endswith(".py")]
        assert code, f"{name} lists no code deps"
        for dep in code:  # the installed package's own files, wherever the project is
            assert dep.is_absolute() and dep.is_file() and dep.resolve().is_relative_to(package), (name, dep)

    assert (project / "reports/index.html").stat().st_size > 0
    metrics = json.loads((project / "metrics/evaluate.json").read_text())
    assert metrics["num_images"] == 120
    clusters = sorted(path for path in (project / "clusters").glob("cluster_*") if path.is_dir())
    assert 1 <= len(clusters) <= 3 and (project / "clusters/index.csv").is_file()
    assert sum(len(list(folder.iterdir())) for folder in clusters) == 120

    lines = result.stdout.splitlines()
    header = next(line for line in lines if "ACC" in line)
    assert header.split()[:3] == ["ACC", "NMI", "ARI"] and "120 images" in header
    for label, model in (("k-means on the embeddings", "kmeans"), ("SCAN", "scan"), ("self-labeling", "selflabel")):
        row = next(line for line in lines if line.startswith(label + " "))
        assert float(row.split()[-3]) == pytest.approx(metrics[model]["acc"], abs=5e-4)
    assert f"report:   {project / 'reports/index.html'}" in lines
    (stage_runs,) = stage_runs_since(started).values()  # one experiment flow run, each stage a child run
    assert stage_runs == {stage: "Completed" for stage in (*UPSTREAM, *DOWNSTREAM)}
    assert len(experiments(project)) == 1


def test_a_second_cluster_command_is_another_experiment_that_reruns_only_the_stages_it_changes(first_run, second_run):
    project = first_run.project
    result, lock_before, started = second_run
    skip_if_code_changed(first_run.code_before)
    output = result.stdout + result.stderr
    assert "another experiment in" in output
    for stage in UPSTREAM:
        assert f"Stage '{stage}' didn't change, skipping" in output
    for stage in DOWNSTREAM:
        assert f"Running stage '{stage}'" in output

    (stage_runs,) = stage_runs_since(started).values()
    assert stage_runs == {stage: "Completed" for stage in DOWNSTREAM}
    lock_after = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    for stage in UPSTREAM:
        assert lock_after[stage] == lock_before["stages"][stage]
    assert lock_after["scan"]["params"]["params.yaml"]["scan.entropy_weight"] == 2
    assert yaml.safe_load((project / "params.yaml").read_text())["scan"]["entropy_weight"] == 2
    assert len(experiments(project)) == 2


def other_project(tmp_path: Path) -> Path:
    from flows.project import create_project

    project = tmp_path / "project"
    create_project(project, {"data.name": "folder", "data.root": str(tmp_path / "other")})
    return project


def images_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    return folder


def image_file(tmp_path: Path) -> Path:
    path = tmp_path / "one.png"
    Image.new("RGB", (4, 4)).save(path)
    return path


def busy_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "todo.txt").write_text("mine\n")
    return folder


# (arguments after `scan cluster`, with {images}, {file}, {project} filled in; words the error names)
BAD_ARGUMENTS = {
    "images missing": (["{tmp}/nowhere"], ["nowhere", "not found"]),
    "images a file": (["{file}"], ["one.png", "is a file"]),
    "unknown key": (["{images}", "-S", "scan.entropy_wieght=2"], ["scan.entropy_wieght", "known keys"]),
    "one cluster": (["{images}", "--clusters", "1"], ["--clusters", "1"]),
    "data.root": (["{images}", "-S", "data.root=x"], ["data.root", "IMAGES"]),
    "folder not a project": (["{images}", "--project", "{busy}"], ["notes", "not a scan project"]),
    "project of other images": (["{images}", "--project", "{project}"], ["other", "photos", "--project"]),
    "weights without backbone": (["{images}", "--weights", "{file}"], ["--weights", "needs --backbone"]),
    "weights missing": (["{images}", "--backbone", "resnet18", "--weights", "{tmp}/no.pth"], ["no.pth", "no such file"]),
}


@pytest.mark.parametrize("case", BAD_ARGUMENTS)
def test_bad_arguments_stop_in_one_error_line_before_any_project_is_made(case, tmp_path):
    words, expected = BAD_ARGUMENTS[case]
    places = {"tmp": tmp_path, "file": image_file(tmp_path), "images": images_folder(tmp_path),
              "busy": busy_folder(tmp_path)}
    if "{project}" in words:
        places["project"] = other_project(tmp_path)
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=places["project"], capture_output=True, text=True)
    arguments = [word.format(**places) for word in words]
    cwd = tmp_path / "here"
    cwd.mkdir()
    before = time.monotonic()
    result = scan("cluster", *arguments, cwd=cwd)
    assert result.returncode == 2, failure(result)
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, result.stderr
    assert all(word in errors[0] for word in expected), errors[0]
    if case != "one cluster":  # argparse adds its usage line above the error
        assert result.stderr.strip() == errors[0]
    assert list(cwd.iterdir()) == []  # no scan-photos/ made here
    assert sorted(path.name for path in places["busy"].iterdir()) == ["todo.txt"]
    if "project" in places:
        after = subprocess.run(["git", "rev-parse", "HEAD"], cwd=places["project"], capture_output=True, text=True)
        assert after.stdout == head.stdout
        assert not (places["project"] / "dvc.lock").exists()
    assert time.monotonic() - before < 60  # no pipeline ran


def test_a_project_from_an_older_package_gains_the_new_keys_and_keeps_its_values(tmp_path):
    """dvc.yaml names every key the installed package knows, and `dvc exp run -S` can set only
    keys params.yaml has: a project made before a key existed gets it at its default."""
    from flows.project import complete_params, run_tool

    project = other_project(tmp_path)
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    del params["scan"]["selection"], params["selflabel"]["neighbor_consensus"]
    params["scan"]["entropy_weight"] = 2.0
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    run_tool(["git", "commit", "-q", "-am", "as an older package wrote it"], project)
    assert complete_params(project) == ["scan.selection", "selflabel.neighbor_consensus"]
    completed = yaml.safe_load(path.read_text())
    assert completed["scan"]["selection"] == "scan_loss" and completed["selflabel"]["neighbor_consensus"] == 0.0
    assert completed["scan"]["entropy_weight"] == 2.0
    assert list(completed["scan"]) == list(yaml.safe_load(default_params_text())["scan"])
    assert "params.yaml gains scan.selection" in run_tool(["git", "log", "-1", "--format=%s"], project)
    assert run_tool(["git", "status", "--porcelain", "params.yaml"], project) == ""
    assert complete_params(project) == []


def default_params_text() -> str:
    from scan_core.config import default_params_yaml

    return default_params_yaml()
