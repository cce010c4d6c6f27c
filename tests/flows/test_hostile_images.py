"""prepare, scan-predict and the layout run as a user runs them, on folders of the files a
camera, phone, scanner or old archive leaves behind: each bad case ends in clear lines, never
a Python traceback, and a 1 x 500,000 PNG is prepared in bounded memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flows import layout
from tests.conftest import make_project, set_params
from tests.flows.test_predict import model_file, one_hot_table  # noqa: F401 - model_file is a fixture

NOT_UTF8 = os.fsdecode(b"bad\xff\xfename.png")
MEMORY_LIMIT_KB = 1_500_000


def normal_photos(root: Path, count: int = 12) -> None:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / f"photo_{index:02d}.png")


def run_command(arguments: list[str], cwd: Path, measure: bool = False) -> tuple[int, str, int]:
    """Exit code, all its output, and (``measure``) its peak resident size in kB."""
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    if measure:  # the command is the child whose peak RUSAGE_CHILDREN reports
        arguments = [sys.executable, "-c", "import resource, subprocess, sys; code = subprocess.run(sys.argv[1:])"
                     ".returncode; print('peak_rss_kb', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
                     "sys.exit(code)", *arguments]
    result = subprocess.run(arguments, cwd=cwd, env=env, capture_output=True, text=True, errors="backslashreplace")
    output = result.stdout + result.stderr
    peak = int(output.split("peak_rss_kb ")[1].split()[0]) if measure else 0
    return result.returncode, output, peak


def prepare(project: Path, measure: bool = False) -> tuple[int, str, int]:
    return run_command([sys.executable, "-m", "flows", "prepare"], project, measure)


@pytest.fixture
def project(tmp_path: Path, prefect_api: str) -> Path:
    project = make_project(tmp_path / "project")
    normal_photos(project / "images")
    set_params(project, {"data": {"name": "folder", "root": "images"}})
    return project


def test_data_root_a_file_is_one_error_line_before_any_flow(project):
    set_params(project, {"data": {"root": "images/photo_00.png"}})
    code, output, _ = prepare(project)
    assert code == 2
    assert output.strip().splitlines() == [
        "error: data.root = images/photo_00.png is a file, not a folder; set it to the folder that holds the images"]


def test_bad_files_stop_prepare_with_the_error_once_and_no_traceback(project):
    (project / "images" / "notes.png").write_text("not an image")
    Image.new("RGB", (8, 8)).save(project / "images" / NOT_UTF8)
    code, output, _ = prepare(project)
    assert code == 2 and "Traceback" not in output, output
    assert output.count("could not be read as images") == 1
    # The name that cannot be stored stops prepare before any file is decoded.
    assert "bad\\xff\\xfename.png: file name is not valid UTF-8" in output
    assert not (project / "artifacts" / "prepare").exists()


def test_skip_prepares_a_hostile_folder_naming_what_it_left_out(project, tmp_path):
    images = project / "images"
    Image.new("RGB", (8, 8)).save(images / NOT_UTF8)
    (images / "IMG_0001.HEIC").write_bytes(b"\0" * 16)
    Image.new("RGB", (16, 4000), (40, 90, 200)).save(images / "thin.png")
    normal_photos(tmp_path / "more_photos", 2)
    os.symlink(tmp_path / "more_photos", images / "linked_dir")
    os.symlink(images, images / "loop")
    set_params(project, {"data": {"on_bad_image": "skip"}})
    code, output, _ = prepare(project)
    assert code == 0 and "Traceback" not in output, output
    info = json.loads((project / "artifacts/prepare/dataset.json").read_text())
    assert info["num_images"] == 12 + 1 + 2
    assert [item["source"] for item in info["skipped"]] == ["bad\\xff\\xfename.png"]
    for said in ("1 HEIC/HEIF file(s) not read", "1 folder link(s) not followed", "linked_dir ->",
                 "1 image(s) with an aspect ratio beyond 3:1 were padded", "left out 1 unreadable image(s)"):
        assert said in output, said


def test_a_1_by_500000_png_is_prepared_in_bounded_memory(project):
    Image.new("L", (1, 500_000), 90).save(project / "images" / "thin.png")
    assert (project / "images" / "thin.png").stat().st_size < 10_000
    code, output, peak_kb = prepare(project, measure=True)
    assert code == 0, output[-3000:]
    assert peak_kb < MEMORY_LIMIT_KB, f"peak RSS {peak_kb} kB"
    print(f"peak RSS preparing a folder with a 1 x 500,000 PNG: {peak_kb / 1024:.0f} MiB")


def test_scan_predict_treats_a_link_loop_and_a_non_utf8_name_as_prepare_does(tmp_path, model_file):  # noqa: F811
    photos = tmp_path / "photos"
    normal_photos(photos, 3)
    os.symlink(photos / "loop.png", photos / "loop.png")
    Image.new("L", (8, 8)).save(photos / NOT_UTF8)
    Image.new("L", (8, 400)).save(photos / "thin.png")
    command = [sys.executable, "-m", "flows.predict", str(photos), "--model", str(model_file[0]),
               "--output", str(tmp_path / "p.csv")]
    code, output, _ = run_command(command, Path(__file__).resolve().parents[2])
    assert code == 2 and "Traceback" not in output, output
    assert output.startswith("error: 1 of 6 file(s) could not be read") and "bad\\xff\\xfename.png" in output

    code, output, _ = run_command([*command, "--skip-bad"], Path(__file__).resolve().parents[2])
    assert code == 0 and "Traceback" not in output, output
    assert "skipped 2 unreadable file(s)" in output and "loop.png: " in output and "bad\\xff\\xfename.png" in output
    assert "1 image(s) with an aspect ratio beyond 3:1 were padded" in output
    assert "4 images, 2 skipped" in output


@pytest.mark.parametrize("cluster", [-3, 3000, 1.5])
def test_layout_checks_every_row_before_writing_anything(tmp_path, capsys, cluster):
    normal_photos(tmp_path / "photos", 2)
    table = one_hot_table([0, 1], ["photo_00.png", "photo_01.png"], [1, 2])
    table["cluster"] = table["cluster"].astype(float if cluster == 1.5 else int)
    table.loc[1, "cluster"] = cluster
    table.to_parquet(tmp_path / "p.parquet")
    output = tmp_path / "clusters"
    code = layout.main(["--predictions", str(tmp_path / "p.parquet"), "--root", str(tmp_path / "photos"),
                        "--output", str(output)])
    error = capsys.readouterr().err
    assert code == 2, error
    assert error.startswith(f"error: the predictions: row 1 (index 1, source photo_01.png, cluster {cluster}, ")
    assert "cluster must be a whole number from 0 to 2" in error and not output.exists()
