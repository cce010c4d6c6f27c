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
                "scan.augmentation": "simclr", "scan.selection": "modularity", "scan.cluster_sizes": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], "scan.update_backbone": False, "scan.num_clusters": "auto", "selflabel.threshold": 0.5,
                "selflabel.ema": 0.5, "selflabel.teacher": "fixed", "augment.crop_min_scale": 0.5, "augment.jitter_strength": 0.5,
                "augment.cutout_fraction": 0.5}
# Where each group's values go: the settings object built from them.
SETTINGS = {"pretext": PretextSettings, "scan": ScanSettings, "selflabel": SelflabelSettings,
            "augment": AugmentSettings}



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


# Where a training group's settings object is used: the library code that must read each of
# its fields (a field nobody there reads does nothing for a notebook user of the library).
LIBRARY = {"pretext": ["scan_core/training/pretext.py"], "scan": ["scan_core/training/clustering.py"],
           "selflabel": ["scan_core/training/selflabel.py"], "augment": ["scan_core/augment"]}
# Fields the library ignores, read only by the stage's task. Strict: when the library reads
# one, its entry must go. None today: issue 20 made train_scan read init and num_neighbors,
# and took method and weights (which mean no SimCLR training) out of PretextSettings.
IGNORED_BY_THE_LIBRARY: dict[str, str] = {}


def _library_source(group: str) -> str:
    paths = [PROJECT_ROOT / path for path in LIBRARY[group]]
    return "\n".join(file.read_text() for path in paths for file in ([path] if path.is_file() else sorted(path.glob("*.py"))))


def _training_keys() -> list[str]:
    return [key for key in known_keys() if key.split(".")[0] in SETTINGS]


@pytest.mark.parametrize("key", [
    pytest.param(key, marks=pytest.mark.xfail(strict=True, reason=IGNORED_BY_THE_LIBRARY[key]))
    if key in IGNORED_BY_THE_LIBRARY else key for key in _training_keys()])
def test_every_key_of_a_training_group_is_used_where_it_goes(key):
    """A key of a training group either is a field of the group's settings that the library
    code reads (``settings.<field>``), or is no field and its stage's task reads it: a field
    only declared (so the library silently ignores what the user set) fails."""
    group, name = key.split(".")
    fields = {field.name for field in dataclasses.fields(SETTINGS[group])}
    if name in fields:
        assert re.search(rf"\bsettings\.{name}\b", _library_source(group)), \
            f"{key} is a field of {SETTINGS[group].__name__} that {', '.join(LIBRARY[group])} never reads"
    else:
        stage = {"augment": "pretext"}.get(group, group)
        readers = [PROJECT_ROOT / "tasks" / f"{reader}.py" for reader in (stage, "scan", "selflabel")]
        assert any(re.search(rf'\["{name}"\]', path.read_text()) for path in readers), \
            f"{key} is neither a field of {SETTINGS[group].__name__} nor read by tasks/{stage}.py"


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
