"""Under DVC: changing scan.entropy_weight reruns scan, selflabel and evaluate only."""

from __future__ import annotations

import json
import re

from tasks.stages import STAGES
from tests.conftest import run

# One module per stage that the stage imports (and some later stages too).
EDITED = {"prepare": "scan_core/data/readers/idx.py", "pretext": "scan_core/training/pretext.py",
          "embed": "tasks/embed.py", "mine": "scan_core/mining.py", "scan": "scan_core/cluster_count.py",
          "selflabel": "scan_core/training/selflabel.py", "evaluate": "scan_core/report.py"}


def _changed_stages(project) -> set[str]:
    status = json.loads(run(["dvc", "status", "--json"], project).strip().splitlines()[-1])
    return {name.split(":")[-1] for name, changes in status.items()
            if any("changed deps" in change for change in changes if isinstance(change, dict))}


def _each_edit_marks_exactly_the_stages_that_import_it(project) -> None:
    """dvc status after an edit: the stages whose code includes the file (and no other) changed."""
    for stage, module in EDITED.items():
        path = project / module
        original = path.read_text()
        path.write_text(original + "\n# an edit\n")
        try:
            importers = {name for name, spec in STAGES.items() if module in spec.code}
            assert stage in importers
            assert _changed_stages(project) == importers, module
        finally:
            path.write_text(original)
    assert _changed_stages(project) == set()


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
    _each_edit_marks_exactly_the_stages_that_import_it(tiny_project)

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
