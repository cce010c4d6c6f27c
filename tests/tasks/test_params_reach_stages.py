"""Every key of params.yaml does something: changing it changes the cache key of the stage
that reads it, and the stage hands it to the code that uses it."""

from __future__ import annotations

import dataclasses
import re

import pytest
import yaml

from scan_core.augment.settings import AugmentSettings
from scan_core.config import Params, known_keys
from scan_core.training.clustering import ScanSettings
from scan_core.training.pretext import PretextSettings
from scan_core.training.selflabel import SelflabelSettings
from tasks.common import stage_key
from tasks.stages import STAGES, stage_params
from tests.conftest import PROJECT_ROOT

# Another valid value for keys whose type alone does not give one.
OTHER_VALUES = {"data.name": "fashion_mnist", "data.recipe": "photo", "augment.hflip": True, "data.train_split": "all", "data.eval_split": "all", "data.on_bad_image": "skip", "data.subset_file": "subset.txt",
                "pretext.backbone": "resnet18", "pretext.method": "pretrained", "mine.space": "projection", "scan.init": "random", "scan.head": "mlp",
                "scan.augmentation": "simclr", "scan.update_backbone": False, "scan.num_clusters": "auto", "selflabel.threshold": 0.5,
                "selflabel.ema": 0.5, "augment.crop_min_scale": 0.5, "augment.jitter_strength": 0.5,
                "augment.cutout_fraction": 0.5}
# Where each group's values go: the settings object built from them.
SETTINGS = {"pretext": PretextSettings, "scan": ScanSettings, "selflabel": SelflabelSettings,
            "augment": AugmentSettings}
# Keys the stage acts on itself instead of handing them on: pretext.method pretrained (with its
# weights) means no SimCLR training at all (tasks/pretext.py).
READ_BY_THE_STAGE = {"pretext": {"method", "weights"}}


def _project_params() -> dict:
    return yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())


def _other_value(key: str, value: object) -> object:
    if key in OTHER_VALUES:
        return OTHER_VALUES[key]
    if value == "auto":
        return 5
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    return f"{value}-other"


def _stage_keys(raw: dict) -> dict[str, str]:
    params = Params.model_validate(raw)
    return {stage: stage_key(stage, stage_params(params, stage), {}) for stage in STAGES}


@pytest.mark.parametrize("key", known_keys())
def test_changing_a_key_changes_the_cache_key_of_exactly_the_stages_that_read_it(key):
    raw = _project_params()
    group, name = key.split(".")
    before = _stage_keys(raw)
    raw[group][name] = _other_value(key, raw[group][name])
    after = _stage_keys(raw)
    changed = {stage for stage in STAGES if before[stage] != after[stage]}
    readers = {stage for stage, spec in STAGES.items() if key in stage_params(Params(), stage)}
    assert readers, f"no stage reads {key}"
    assert changed == readers


@pytest.mark.parametrize("group", list(SETTINGS))
def test_every_key_of_a_training_group_is_a_field_of_its_settings(group):
    fields = {field.name for field in dataclasses.fields(SETTINGS[group])}
    keys = {key.split(".")[1] for key in known_keys() if key.startswith(group + ".")}
    keys -= READ_BY_THE_STAGE.get(group, set())
    assert keys <= fields, f"{sorted(keys - fields)} of {group} never reach {SETTINGS[group].__name__}"
    assert not READ_BY_THE_STAGE.get(group, set()) & fields, "a key is both handed on and read by the stage"


@pytest.mark.parametrize("group", ["data", "embed", "mine", "evaluate"])
def test_every_key_of_a_plain_group_is_read_by_its_stage(group):
    readers = {"data": "prepare"}.get(group, group)
    source = (PROJECT_ROOT / "tasks" / f"{readers}.py").read_text()
    read = set(re.findall(r'(?:data|settings|values)\["(\w+)"\]', source))
    read |= set(re.findall(rf'group\(params, "{group}"\)\["(\w+)"\]', source))
    keys = {key.split(".")[1] for key in known_keys() if key.startswith(group + ".")}
    assert keys <= read, f"tasks/{readers}.py never reads {sorted(keys - read)}"


def test_the_walk_covers_every_key_of_params_yaml():
    flat = {f"{group}.{key}" for group, values in _project_params().items() for key in values}
    assert flat == set(known_keys())
