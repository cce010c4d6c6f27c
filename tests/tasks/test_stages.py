"""Each stage's code dependencies are what it imports; dvc.yaml and the Prefect keys agree."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from flows.dvc_file import render
from scan_core.config import Params, known_keys
from tasks.stages import PARAMS_SCHEMA, SHARED_MACHINERY, STAGES, imported_files, stage_params
from tests.conftest import PROJECT_ROOT

# One interpreter loads the third-party libraries once, then forks a child per stage that
# imports only that stage and reports which project files Python loaded for it.
LOADED_PROJECT_FILES = """
import json, os, sys
from pathlib import Path
import numpy, pandas, pyarrow.parquet, torch, torchvision, sklearn.cluster, PIL.Image, prefect, pydantic, yaml
root, groups = Path(sys.argv[1]), json.loads(sys.argv[2])
for key, modules in groups.items():
    read, write = os.pipe()
    if os.fork() == 0:
        for name in modules:
            __import__(name)
        files = sorted({Path(module.__file__).resolve().relative_to(root).as_posix()
                        for module in list(sys.modules.values())
                        if getattr(module, "__file__", None) and Path(module.__file__).resolve().is_relative_to(root)
                        and Path(module.__file__).resolve().relative_to(root).parts[0] in ("scan_core", "tasks")})
        os.write(write, json.dumps(files).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        print(key, pipe.read())
    os.wait()
"""


@pytest.fixture(scope="module")
def loaded_files() -> dict[str, set[str]]:
    """Project files Python loads to import each stage (with the params schema), and the machinery."""
    groups = {"machinery": ["tasks.common", "tasks.stages"],
              **{stage: [f"tasks.{stage}", "scan_core.config"] for stage in STAGES}}
    output = subprocess.run([sys.executable, "-c", LOADED_PROJECT_FILES, str(PROJECT_ROOT), json.dumps(groups)],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, check=True).stdout
    return {line.split(" ", 1)[0]: set(json.loads(line.split(" ", 1)[1])) for line in output.splitlines()}


def test_dvc_yaml_is_what_the_generator_writes():
    assert (PROJECT_ROOT / "dvc.yaml").read_text() == render(), "run `python -m flows.dvc_file` and commit dvc.yaml"


@pytest.mark.parametrize("stage", list(STAGES))
def test_every_module_a_stage_loads_is_among_its_code_dependencies(stage, loaded_files):
    loaded = loaded_files[stage] - (loaded_files["machinery"] - {PARAMS_SCHEMA})
    missing = {file for file in loaded if not file.endswith("__init__.py")} - set(STAGES[stage].code)
    assert not missing, f"{stage} runs {sorted(missing)} but its code dependencies leave them out"


def test_stages_do_not_depend_on_code_they_do_not_run():
    code = {name: set(spec.code) for name, spec in STAGES.items()}
    assert "scan_core/training/selflabel.py" not in code["pretext"] | code["scan"]
    assert not {"scan_core/augment/strong.py", "scan_core/losses/confidence.py"} & code["pretext"]
    assert "scan_core/losses/contrastive.py" not in code["scan"] | code["selflabel"]
    # Later stages read images.npy through the store; decoding the sources is prepare's, and the
    # report's, which shows thumbnails of the original files the way prepare reads them.
    for name in ("pretext", "embed", "mine", "scan", "selflabel"):
        assert {file for file in code[name] if "data/" in file} == {"scan_core/data/image_store.py"}, name
    assert {file for file in code["evaluate"] if "data/" in file} == {"scan_core/data/image_store.py",
                                                                        "scan_core/data/image_file.py"}
    assert not {file for file in code["pretext"] if file.startswith("tasks/scan")}
    assert "scan_core/training/common.py" not in code["mine"] | code["evaluate"]
    for name, files in code.items():
        assert not files & SHARED_MACHINERY
        assert {f"tasks/{name}.py", PARAMS_SCHEMA} <= files
        assert not {f"tasks/{other}.py" for other in STAGES if other != name} & files, name


def test_a_package_init_counts_only_when_a_name_is_taken_from_it(tmp_path, monkeypatch):
    import tasks.stages as stages

    (tmp_path / "scan_core" / "pkg").mkdir(parents=True)
    (tmp_path / "scan_core" / "__init__.py").write_text("")
    (tmp_path / "scan_core" / "pkg" / "__init__.py").write_text("VALUE = 1\n")
    (tmp_path / "scan_core" / "pkg" / "sub.py").write_text("")
    (tmp_path / "scan_core" / "user.py").write_text(
        "from scan_core.pkg import sub\nimport scan_core.pkg.sub\n\ndef later():\n    from scan_core import pkg\n")
    (tmp_path / "scan_core" / "other.py").write_text("from scan_core.pkg import VALUE\nimport numpy\n")
    monkeypatch.setattr(stages, "PROJECT_ROOT", tmp_path)
    assert imported_files("scan_core/user.py") == {"scan_core/pkg/sub.py", "scan_core/pkg/__init__.py"}
    assert imported_files("scan_core/other.py") == {"scan_core/pkg/__init__.py"}


def test_relative_and_nested_imports_are_followed(tmp_path, monkeypatch):
    import tasks.stages as stages

    (tmp_path / "scan_core" / "pkg").mkdir(parents=True)
    for name in ("__init__.py", "top.py", "pkg/__init__.py", "pkg/sub.py", "pkg/deep.py"):
        (tmp_path / "scan_core" / name).write_text("")
    (tmp_path / "scan_core" / "pkg" / "user.py").write_text(
        "from . import sub\nimport scan_core.top as top\n\nclass Later:\n    def method(self):\n"
        "        from .deep import anything\n        from ..top import name\n")
    monkeypatch.setattr(stages, "PROJECT_ROOT", tmp_path)
    assert imported_files("scan_core/pkg/user.py") == {"scan_core/pkg/sub.py", "scan_core/top.py",
                                                        "scan_core/pkg/deep.py"}


def _dvc_stages() -> dict:
    return yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]


def test_dvc_yaml_lists_each_stages_own_params_and_nothing_else():
    for name, stage in _dvc_stages().items():
        assert sorted(stage["params"]) == sorted(stage_params(Params(), name)), name


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
