"""Write ``dvc.yaml`` from the stage table in ``tasks/stages.py``, the same source the Prefect
cache keys come from, so DVC and Prefect agree on what each stage depends on.

    python -m flows.dvc_file            # rewrite dvc.yaml
    python -m flows.dvc_file --check    # exit 1 when dvc.yaml is stale (what the tests run)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from scan_core.config import known_keys
from scan_core.names import WEIGHTS_DIR
from tasks.paths import (CONFUSION_DATA_FILE, PRETEXT_CURVES_FILE, PURITY_CURVE_FILE, SCAN_CURVES_FILE,
                         SELFLABEL_CURVES_FILE, SELFLABEL_MODEL_FILE)
from tasks.stages import PROJECT_ROOT, STAGES, StageSpec, group_keys

DVC_FILE = PROJECT_ROOT / "dvc.yaml"
HEADER = "# Written by `python -m flows.dvc_file` from tasks/stages.py; edit that, not this file.\n"
METRICS_SUFFIX = ".json"
IMAGE_PLOTS = ["plots/confusion.png", "plots/cluster_sizes.png", "plots/training.png"]


def _curve(title: str, file, y: str | list[str], x: str = "epoch", **labels: str) -> dict:
    """A line plot of fields of the records in ``file`` (a JSON list, one record per x)."""
    return {"template": "linear", "x": x, "y": {file.as_posix(): y}, "title": title, **labels}


# Plots drawn from the data files the stages write, so that `dvc plots diff` draws two
# experiments on one chart. Every file lies inside a stage's outputs.
DATA_PLOTS = {
    "pretext-loss": _curve("pretext: SimCLR loss per epoch", PRETEXT_CURVES_FILE, "loss"),
    "mine-purity": _curve("mine: neighbor purity against k (labels needed)", PURITY_CURVE_FILE, "purity", x="k",
                          x_label="k nearest neighbors", y_label="share of neighbors in the anchor's class"),
    "scan-loss": _curve("scan: loss per epoch (total = consistency - entropy weight x entropy)",
                        SCAN_CURVES_FILE, ["loss", "consistency", "entropy"]),
    "scan-health": _curve("scan: neighbor agreement, mean confidence and size balance of each epoch's best head",
                          SCAN_CURVES_FILE, ["neighbor_agreement", "mean_confidence", "size_balance"]),
    "selflabel-loss": _curve("selflabel: loss per epoch", SELFLABEL_CURVES_FILE, "loss"),
    "selflabel-confident": _curve("selflabel: confident images per epoch", SELFLABEL_CURVES_FILE, "confident"),
    "confusion": {"template": "confusion", "x": "actual", "y": {CONFUSION_DATA_FILE.as_posix(): "predicted"},
                  "title": "self-labeled model: true class against the class its cluster is matched to",
                  "x_label": "true class", "y_label": "matched cluster"},
}
PLOTS = [{name: spec} for name, spec in DATA_PLOTS.items()] + IMAGE_PLOTS
# `dvc artifacts get <repo> selflabel-model` fetches the final model from a commit's cache.
ARTIFACTS = {"selflabel-model": {"path": SELFLABEL_MODEL_FILE.as_posix(), "type": "model",
                                 "desc": "SCAN self-labeled classifier (scan_core.model_files.load_clustering_model)",
                                 "labels": ["scan", "image-clustering"]}}
# Inputs from outside the pipeline. Local pretrained weights must lie in WEIGHTS_DIR (checked by
# the params schema): a dep cannot depend on a param's value, so the whole folder is pretext's dep.
SOURCE_DEPS = {"prepare": ["${data.root}"], "pretext": [WEIGHTS_DIR]}


class _IndentedLists(yaml.SafeDumper):
    """Indent list items under their key, as DVC's own examples do."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def stage_entry(spec: StageSpec, code_root: Path | None = None) -> dict:
    """One stage of dvc.yaml. ``code_root`` set: its code deps are absolute paths under it (a
    project made by ``scan cluster`` depends on the installed package's files)."""
    upstream = [path for name in spec.inputs for path in STAGES[name].folders]
    code = [(code_root / file).as_posix() for file in spec.code] if code_root else list(spec.code)
    entry: dict = {
        "cmd": f"python -m flows {spec.name}",
        "params": group_keys(known_keys(), spec.params),
        "deps": [*code, *SOURCE_DEPS.get(spec.name, []), *upstream],
    }
    if spec.folders:
        entry["outs"] = list(spec.folders)
    if metrics := [path for path in spec.outputs if path.endswith(METRICS_SUFFIX)]:
        entry["metrics"] = [{path: {"cache": False}} for path in metrics]
    return entry


def render(code_root: Path | None = None, header: str = HEADER) -> str:
    document = {"stages": {name: stage_entry(spec, code_root) for name, spec in STAGES.items()}, "plots": PLOTS,
                "artifacts": ARTIFACTS}
    return header + yaml.dump(document, Dumper=_IndentedLists, sort_keys=False, default_flow_style=False, width=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.dvc_file", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report whether dvc.yaml is up to date")
    args = parser.parse_args(argv)
    text = render()
    current = DVC_FILE.read_text() if DVC_FILE.exists() else ""
    if args.check:
        if current != text:
            print("dvc.yaml is stale: run `python -m flows.dvc_file` and commit it", file=sys.stderr)
            return 1
        return 0
    if current != text:
        DVC_FILE.write_text(text)
        print("dvc.yaml written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
