"""dvc.yaml and the Prefect cache keys must describe the same dependencies."""

from __future__ import annotations

import yaml

from scan_core.config import Params, known_keys
from tasks.stages import STAGES, stage_params
from tests.conftest import PROJECT_ROOT


def _dvc_stages() -> dict:
    return yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]


def test_dvc_yaml_lists_each_stages_own_params_and_nothing_else():
    for name, stage in _dvc_stages().items():
        assert sorted(stage["params"]) == sorted(stage_params(Params(), name)), name


def test_dvc_yaml_lists_the_code_each_stage_runs():
    for name, stage in _dvc_stages().items():
        assert set(STAGES[name].code) <= set(stage["deps"]), name
        assert stage["cmd"] == f"python -m flows {name}"


def test_no_stage_depends_on_another_stages_seed():
    for name, stage in _dvc_stages().items():
        seeds = [key for key in stage["params"] if key.endswith("seed")]
        assert all(key.startswith(name + ".") for key in seeds), (name, seeds)


def test_params_yaml_sets_every_documented_key():
    raw = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    flat = {f"{group}.{key}" for group, values in raw.items() for key in values}
    assert flat == set(known_keys())
    for key in ("data.name", "data.root", "pretext.backbone", "pretext.epochs", "pretext.batch_size",
                "pretext.temperature", "pretext.seed", "mine.topk", "scan.num_neighbors",
                "scan.entropy_weight", "scan.num_clusters", "scan.num_heads", "scan.epochs",
                "scan.batch_size", "scan.seed", "selflabel.threshold", "selflabel.epochs",
                "selflabel.batch_size", "selflabel.seed"):
        assert key in flat
