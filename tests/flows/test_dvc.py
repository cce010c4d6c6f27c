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


def test_changing_one_image_of_a_folder_data_set_marks_prepare_changed(tiny_project, prefect_api):
    from tests.conftest import set_params
    from tests.flows.test_bad_input import write_digit_folder

    write_digit_folder(tiny_project / "images")
    set_params(tiny_project, {"data": {"name": "folder", "root": "images"}})
    run(["git", "init", "-q"], tiny_project)
    run(["dvc", "init", "-q"], tiny_project)
    run(["dvc", "repro", "prepare"], tiny_project)
    assert "Data and pipelines are up to date" in run(["dvc", "status", "prepare"], tiny_project)

    changed = tiny_project / "images/class_1/image_03.png"
    changed.write_bytes((tiny_project / "images/class_0/image_00.png").read_bytes())
    status = run(["dvc", "status", "prepare"], tiny_project)
    assert "prepare:" in status and "modified:" in status and "images" in status
