"""Under DVC: changing scan.entropy_weight reruns scan, selflabel and evaluate only; the
plots in dvc.yaml draw the stages' data files, and the self-labeled model is a DVC artifact."""

from __future__ import annotations

import json
import re
import shutil
import sys

import yaml

from tasks import paths
from tasks.stages import STAGES
from tests.conftest import TINY_PARAMS, run, set_params

# One module per stage that the stage imports (and some later stages too).
EDITED = {"prepare": "scan_core/data/readers/idx.py", "pretext": "scan_core/training/pretext.py",
          "embed": "tasks/embed.py", "mine": "scan_core/mining.py", "scan": "scan_core/cluster_count.py",
          "selflabel": "scan_core/training/selflabel.py", "evaluate": "scan_core/figures.py"}


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


def _stages_wrote_their_plot_data(project) -> None:
    """One record per epoch in each training stage's curves, purity for k = 1..topk, and one
    (actual, predicted) pair per labeled evaluated image."""
    def records(path):
        return json.loads((project / path).read_text())

    pretext, scan, selflabel = (records(path) for path in (
        paths.PRETEXT_CURVES_FILE, paths.SCAN_CURVES_FILE, paths.SELFLABEL_CURVES_FILE))
    assert [record["epoch"] for record in pretext] == list(range(1, TINY_PARAMS["pretext"]["epochs"] + 1))
    assert [record["epoch"] for record in scan] == list(range(1, TINY_PARAMS["scan"]["epochs"] + 1))
    assert 1 <= len(selflabel) <= TINY_PARAMS["selflabel"]["epochs"]
    assert all(set(record) == {"epoch", "loss"} for record in pretext)
    assert all({"epoch", "loss", "consistency", "entropy", "neighbor_agreement", "mean_confidence", "size_balance"}
               <= set(record) for record in scan)
    assert all({"epoch", "loss", "confident"} <= set(record) for record in selflabel)
    purity = records(paths.PURITY_CURVE_FILE)
    assert [point["k"] for point in purity] == list(range(1, TINY_PARAMS["mine"]["topk"] + 1))
    assert all(0 <= point["purity"] <= 1 for point in purity)
    confusion = records(paths.CONFUSION_DATA_FILE)
    labeled = records(paths.METRICS_FILE)["protocol"]["labeled_eval_rows"]
    assert len(confusion) == labeled and all(set(pair) == {"actual", "predicted"} for pair in confusion)


def _plotted(output: str) -> dict[str, set[str]]:
    """``{plot id: revisions with data}`` from ``dvc plots show/diff --json``."""
    shown = json.loads(output[output.index("{"):])
    assert not shown.get("errors"), shown["errors"]
    found: dict[str, set[str]] = {}
    for plot_id, renders in shown["data"].items():
        for render in renders:
            values = render["content"]["data"]["values"] if render["type"] == "vega" else [{}]
            if values:
                found.setdefault(plot_id, set()).update(render["revisions"])
    return found


def _every_plot_has_data(project) -> None:
    declared = [entry if isinstance(entry, str) else next(iter(entry))
                for entry in yaml.safe_load((project / "dvc.yaml").read_text())["plots"]]
    assert set(_plotted(run(["dvc", "plots", "show", "--json"], project))) == set(declared)


def _selflabel_model_is_a_dvc_artifact(project, destination) -> None:
    """Registered with a version tag (what `gto register` makes), `dvc artifacts get` fetches it."""
    run(["git", "tag", "-a", "selflabel-model@v0.1.0", "-m", "register selflabel-model v0.1.0"], project)
    assert json.loads(run(["gto", "show", "--json"], project))["selflabel-model"]["version"] == "v0.1.0"
    destination.parent.mkdir(parents=True, exist_ok=True)
    run(["dvc", "artifacts", "get", str(project), "selflabel-model", "-o", str(destination)], destination.parent)
    assert destination.read_bytes() == (project / paths.SELFLABEL_MODEL_FILE).read_bytes()


def _stages_published_prefect_artifacts() -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    keys = [f"scan-{stage}" for stage in STAGES if stage != "prepare"] + [
        f"scan-{stage}-progress" for stage in ("pretext", "scan", "selflabel")] + ["scan-report"]
    with get_client(sync_client=True) as client:
        found = {artifact.key for artifact in client.read_latest_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys)))}
    assert found == set(keys)


def test_exp_run_with_new_entropy_weight_reruns_clustering_onward_only(tiny_project, prefect_api, tmp_path):
    run(["git", "init", "-q"], tiny_project)
    run(["git", "config", "user.email", "test@example.com"], tiny_project)
    run(["git", "config", "user.name", "test"], tiny_project)
    run(["dvc", "init", "-q"], tiny_project)
    first = run(["dvc", "repro"], tiny_project)
    assert re.findall(r"Running stage '(\w+)'", first) == [
        "prepare", "pretext", "embed", "mine", "scan", "selflabel", "evaluate"]
    _stages_wrote_their_plot_data(tiny_project)
    _stages_published_prefect_artifacts()
    run(["git", "add", "-A"], tiny_project)
    run(["git", "commit", "-qm", "baseline"], tiny_project)
    _every_plot_has_data(tiny_project)
    _selflabel_model_is_a_dvc_artifact(tiny_project, tmp_path / "fetched" / "model.pt")
    _each_edit_marks_exactly_the_stages_that_import_it(tiny_project)

    experiment = run(["dvc", "exp", "run", "-S", "scan.entropy_weight=3"], tiny_project)

    assert re.findall(r"Running stage '(\w+)'", experiment) == ["scan", "selflabel", "evaluate"]
    for stage in ("prepare", "pretext", "embed", "mine"):
        assert f"Stage '{stage}' didn't change, skipping" in experiment
    diff = run(["dvc", "metrics", "diff", "--json"], tiny_project)
    assert "metrics/evaluate.json" in diff
    both = _plotted(run(["dvc", "plots", "diff", "HEAD", "--json"], tiny_project))  # HEAD against the workspace
    assert both["scan-loss"] == both["confusion"] == {"HEAD", "workspace"}
    _prefect_and_dvc_agree_on_what_is_up_to_date(tiny_project)


def _pipeline_states(project) -> str:
    """What `python -m flows pipeline` prints about its stages: "prepare=Cached pretext=..."."""
    output = run([sys.executable, "-m", "flows", "pipeline"], project)
    return next(line for line in output.splitlines() if line.startswith("prepare="))


def _prefect_and_dvc_agree_on_what_is_up_to_date(project) -> None:
    """Like a fresh clone after `dvc pull` (no Prefect records or results): every stage DVC
    skips finishes Cached under `python -m flows pipeline`; after a Prefect-only run that
    recomputes scan onward, DVC skips every stage."""
    shutil.rmtree(project / ".scan_cache")
    assert _changed_stages(project) == set()
    assert _pipeline_states(project) == " ".join(f"{stage}=Cached" for stage in STAGES)

    set_params(project, {"scan": {"entropy_weight": 2}})
    assert _changed_stages(project) == {"scan"}
    assert _pipeline_states(project) == ("prepare=Cached pretext=Cached embed=Cached mine=Cached scan=Completed selflabel=Completed "
                      "evaluate=Completed")
    assert _changed_stages(project) == set()


def test_changing_one_image_of_a_folder_data_set_marks_prepare_changed(tiny_project, prefect_api):
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
