"""Under DVC: changing scan.entropy_weight reruns scan, selflabel and evaluate only."""

from __future__ import annotations

import re

from tests.conftest import run


def test_exp_run_with_new_entropy_weight_reruns_clustering_onward_only(tiny_project, prefect_api):
    run(["git", "init", "-q"], tiny_project)
    run(["git", "config", "user.email", "test@example.com"], tiny_project)
    run(["git", "config", "user.name", "test"], tiny_project)
    run(["dvc", "init", "-q"], tiny_project)
    first = run(["dvc", "repro"], tiny_project)
    assert re.findall(r"Running stage '(\w+)'", first) == [
        "prepare", "pretext", "embed", "mine", "scan", "selflabel", "evaluate"]
    run(["git", "add", "-A"], tiny_project)
    run(["git", "commit", "-qm", "baseline"], tiny_project)

    experiment = run(["dvc", "exp", "run", "-S", "scan.entropy_weight=3"], tiny_project)

    assert re.findall(r"Running stage '(\w+)'", experiment) == ["scan", "selflabel", "evaluate"]
    for stage in ("prepare", "pretext", "embed", "mine"):
        assert f"Stage '{stage}' didn't change, skipping" in experiment
    diff = run(["dvc", "metrics", "diff", "--json"], tiny_project)
    assert "metrics/evaluate.json" in diff
