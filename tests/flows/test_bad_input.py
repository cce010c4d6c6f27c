"""Bad params and bad image files stop a stage with exit code 2 and one message naming the
culprit, before any artifact is created or changed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flows.__main__ import main
from tasks.common import digest_paths
from tests.conftest import set_params
from tests.data.format_fixtures import png_bytes, write_bad_files

WATCHED = ["artifacts", "metrics", "plots", "reports"]


def write_digit_folder(root: Path, count: int = 12) -> None:
    """``count`` small grayscale PNGs in two class folders."""
    rng = np.random.default_rng(0)
    for index in range(count):
        image = Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8), mode="L")
        path = root / f"class_{index % 2}" / f"image_{index:02d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png_bytes(image))


@pytest.fixture(scope="module")
def prepared_folder_project(tmp_path_factory: pytest.TempPathFactory, prefect_api: str):
    """A tiny project on a 12-image folder, prepared once."""
    from tests.conftest import make_project

    project = make_project(tmp_path_factory.mktemp("bad-input") / "project")
    write_digit_folder(project / "images")
    set_params(project, {"data": {"name": "folder", "root": "images"}, "mine": {"topk": 5},
                         "scan": {"num_neighbors": 5, "num_clusters": 2}})
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)
        assert main(["prepare"]) == 0
        yield project


BAD_PARAMS = [
    ({"scan": {"entropy_weigth": 3}}, "scan", ["scan.entropy_weigth", "did you mean scan.entropy_weight"]),
    ({"scann": {"epochs": 3}}, "scan", ["scann"]),
    ({"pretext": {"batch_size": "abc"}}, "pretext", ["pretext.batch_size", "'abc'"]),
    ({"pretext": {"batch_size": 0}}, "pretext", ["pretext.batch_size", "0", "greater than or equal to 2"]),
    ({"scan": {"batch_size": 0}}, "scan", ["scan.batch_size", "0"]),
    ({"selflabel": {"batch_size": 0}}, "selflabel", ["selflabel.batch_size", "0"]),
    ({"scan": {"entropy_weight": -1}}, "scan", ["scan.entropy_weight", "-1", "greater than or equal to 0"]),
    ({"selflabel": {"threshold": 0}}, "selflabel", ["selflabel.threshold", "0", "greater than 0"]),
    ({"selflabel": {"threshold": 1.5}}, "selflabel", ["selflabel.threshold", "1.5", "less than 1"]),
    ({"scan": {"num_neighbors": 9}}, "scan", ["scan.num_neighbors = 9", "mine.topk = 5"]),
    ({"scan": {"num_clusters": 1}}, "scan", ["scan.num_clusters", "1"]),
    ({"scan": {"cluster_sizes": [50, 100, 850]}}, "scan", ["scan.cluster_sizes", "3 sizes", "scan.num_clusters = 2"]),
    ({"scan": {"cluster_sizes": [1, 2], "num_clusters": "auto"}}, "scan", ["scan.cluster_sizes", "not auto"]),
    ({"scan": {"num_clusters": 13}}, "scan", ["scan.num_clusters = 13", "12 training images"]),
    ({"mine": {"topk": 12}}, "mine", ["mine.topk = 12", "below the number of training images (12)"]),
    ({"data": {"name": "cifar"}}, "prepare", ["data.name", "'cifar'", "cifar10"]),
    ({"data": {"on_bad_image": "ignore"}}, "prepare", ["data.on_bad_image", "'ignore'", "skip"]),
    ({"pretext": {"backbone": "resnet19"}}, "pretext", ["pretext.backbone", "'resnet19'", "resnet18"]),
    ({"pretext": {"temperature": 0}}, "pretext", ["pretext.temperature", "0"]),
]


@pytest.mark.parametrize(("updates", "stage", "expected"), BAD_PARAMS,
                         ids=[next(iter(update)) + "." + next(iter(next(iter(update.values()))))
                              for update, _, _ in BAD_PARAMS])
def test_bad_param_stops_the_stage_naming_it(prepared_folder_project, capsys, updates, stage, expected):
    project = prepared_folder_project
    original = (project / "params.yaml").read_text()
    before = digest_paths(WATCHED)
    try:
        set_params(project, updates)
        code = main([stage])
    finally:
        (project / "params.yaml").write_text(original)
    message = capsys.readouterr().err
    assert code == 2
    assert message.startswith("error: ") and message.count("\n") == 1, message
    for fragment in expected:
        assert fragment in message
    assert digest_paths(WATCHED) == before


BAD_FILES = ["empty.png", "notes.png", "random.jpg", "truncated.jpg", "truncated.png"]


@pytest.mark.parametrize("bad_name", BAD_FILES)
def test_bad_image_file_fails_prepare_naming_it(prepared_folder_project, capsys, bad_name):
    project = prepared_folder_project
    broken = project / "images" / "class_0"
    scratch = project.parent / f"bad-{bad_name}"
    write_bad_files(scratch)
    before = digest_paths(WATCHED)
    (broken / bad_name).write_bytes((scratch / bad_name).read_bytes())
    try:
        code = main(["prepare"])
    finally:
        (broken / bad_name).unlink()
    message = capsys.readouterr().err
    assert code == 2
    assert f"class_0/{bad_name}" in message and "data.on_bad_image: skip" in message
    assert digest_paths(WATCHED) == before


def test_every_bad_file_is_listed_at_once_and_skip_leaves_them_out(prepared_folder_project, capsys):
    project = prepared_folder_project
    names = write_bad_files(project / "images" / "class_1")
    before = digest_paths(WATCHED)
    try:
        assert main(["prepare"]) == 2
        message = capsys.readouterr().err
        assert all(f"class_1/{name}" in message for name in names)
        assert digest_paths(WATCHED) == before

        set_params(project, {"data": {"on_bad_image": "skip"}})
        assert main(["prepare"]) == 0
        import json

        info = json.loads((project / "artifacts/prepare/dataset.json").read_text())
        assert info["num_images"] == 12
        assert sorted(Path(item["source"]).name for item in info["skipped"]) == names
    finally:
        for name in names:
            (project / "images" / "class_1" / name).unlink()
        set_params(project, {"data": {"on_bad_image": "fail"}})
        assert main(["prepare"]) == 0


def _run_stage_command(project: Path, stage: str) -> tuple[int, str]:
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "flows", stage], cwd=project, capture_output=True, text=True)
    return result.returncode, result.stdout + result.stderr


def test_a_stage_run_before_its_inputs_exist_says_what_to_run_in_one_line(tmp_path):
    from tests.conftest import make_project

    project = make_project(tmp_path / "project")
    code, output = _run_stage_command(project, "embed")
    assert code == 2
    assert output.strip().splitlines() == [
        "error: stage 'prepare' has no outputs in artifacts/prepare; run it first (dvc repro prepare)"]


def test_a_param_beyond_the_data_size_is_one_line_naming_key_value_and_limit(prepared_folder_project):
    project = prepared_folder_project
    original = (project / "params.yaml").read_text()
    try:
        set_params(project, {"mine": {"topk": 12}})
        code, output = _run_stage_command(project, "mine")
    finally:
        (project / "params.yaml").write_text(original)
    assert code == 2
    lines = output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in output, output
    assert "mine.topk = 12" in lines[0] and "below the number of training images (12)" in lines[0]
