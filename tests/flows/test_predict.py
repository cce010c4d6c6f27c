"""scan-predict (``python -m flows.predict``) and ``python -m flows.layout`` as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from scan_core.augment.settings import AugmentSettings
from scan_core.model_files import save_model
from scan_core.models import ClusteringModel, build_backbone
from scan_core.prediction_table import predictions_table
from scan_core.training.common import predict_probabilities
from flows import layout, predict
from tests.conftest import PROJECT_ROOT

COLUMNS = ["index", "source", "cluster", "confidence", "probs"]


@pytest.fixture
def model_file(tmp_path: Path) -> tuple[Path, ClusteringModel]:
    torch.manual_seed(0)
    model = ClusteringModel(build_backbone("small_cnn", 1), 4)
    path = tmp_path / "model.pt"
    save_model(path, model, backbone="small_cnn", in_channels=1, num_clusters=4, image_size=8,
               mean=(0.3,), std=(0.3,))
    return path, model


def gray(seed: int, shape: tuple[int, int] = (8, 8)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """photos/a/{0,1}.png, photos/b/2.png (8x8 grayscale) and a hidden file that is not an image."""
    root = tmp_path / "photos"
    for i, name in enumerate(["a/0.png", "a/1.png", "b/2.png"]):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(gray(i), "L").save(root / name)
    (root / ".DS_Store").write_bytes(b"\0")
    return root


def expected_probabilities(model: ClusteringModel, images: list[np.ndarray]) -> np.ndarray:
    settings = AugmentSettings(mean=(0.3,), std=(0.3,))
    return predict_probabilities(model, torch.from_numpy(np.stack(images)[..., None]), settings, 64,
                                 torch.device("cpu"))[0].numpy()


# --- scan-predict -------------------------------------------------------------------------------


def test_predict_writes_parquet_for_folders_and_files(tmp_path, model_file, photos, capsys):
    path, model = model_file
    extra = tmp_path / "extra.png"
    Image.fromarray(np.repeat(gray(3)[..., None], 3, axis=2), "RGB").save(extra)  # luminance = gray(3)
    output = tmp_path / "out" / "predictions.parquet"

    code = predict.main([str(photos), str(extra), "--model", str(path), "--output", str(output),
                         "--device", "cpu"])

    assert code == 0
    table = pd.read_parquet(output)
    assert list(table.columns) == COLUMNS
    assert table["index"].tolist() == [0, 1, 2, 3]
    assert table["source"].tolist() == [str(photos / "a/0.png"), str(photos / "a/1.png"),
                                        str(photos / "b/2.png"), str(extra)]
    expected = expected_probabilities(model, [gray(0), gray(1), gray(2), gray(3)])
    np.testing.assert_allclose(np.stack(table["probs"]), expected, atol=1e-6)
    assert table["cluster"].tolist() == expected.argmax(1).tolist()
    summary = capsys.readouterr().out.strip().splitlines()
    assert summary == [f"4 images; {table['cluster'].nunique()} of 4 clusters used; wrote {output}"]


def test_predict_writes_csv_with_one_column_per_cluster(tmp_path, model_file, photos):
    path, _ = model_file
    parquet, csv = tmp_path / "p.parquet", tmp_path / "p.csv"
    assert predict.main([str(photos), "--model", str(path), "--output", str(parquet)]) == 0
    assert predict.main([str(photos), "--model", str(path), "--output", str(csv), "--batch-size", "2"]) == 0

    wide, long = pd.read_csv(csv), pd.read_parquet(parquet)
    assert list(wide.columns) == ["index", "source", "cluster", "confidence",
                                  "prob_00", "prob_01", "prob_02", "prob_03"]
    assert wide["source"].tolist() == long["source"].tolist()
    assert wide["cluster"].tolist() == long["cluster"].tolist()
    np.testing.assert_allclose(wide[[f"prob_0{k}" for k in range(4)]].to_numpy(), np.stack(long["probs"]),
                               atol=1e-6)


def test_predict_lists_every_unreadable_file_or_skips_them(tmp_path, model_file, photos, capsys):
    path, _ = model_file
    (photos / "a" / "broken.png").write_bytes(b"not an image")
    (photos / "b" / "empty.jpg").write_bytes(b"")
    output = tmp_path / "p.parquet"

    assert predict.main([str(photos), "--model", str(path), "--output", str(output)]) == 2
    error = capsys.readouterr().err
    assert "2 of 5 file(s) could not be read" in error and "--skip-bad" in error
    assert "broken.png" in error and "empty.jpg" in error
    assert not output.exists()

    assert predict.main([str(photos), "--model", str(path), "--output", str(output), "--skip-bad"]) == 0
    captured = capsys.readouterr()
    assert "skipped 2 unreadable file(s)" in captured.err and "broken.png" in captured.err
    assert "3 images, 2 skipped" in captured.out
    table = pd.read_parquet(output)
    assert [Path(source).name for source in table["source"]] == ["0.png", "1.png", "2.png"]
    assert table["index"].tolist() == [0, 1, 3]  # positions among the 5 files found, in sorted order


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["{photos}", "--model", "{tmp}/absent.pt"], "run `dvc repro` first"),
        (["{tmp}/empty_folder", "--model", "{model}"], "no images found in folder"),
        (["{tmp}/nothing_here.png", "--model", "{model}"], "no such file or folder"),
        (["{photos}", "--model", "{model}", "--output", "{tmp}/p.json"], "must end in .parquet or .csv"),
        (["{photos}", "--model", "{model}", "--batch-size", "0"], "--batch-size must be at least 1"),
        (["{photos}", "--model", "{model}", "--device", "tpu"], "--device"),
    ],
)
def test_predict_bad_input_exits_2_with_one_line(tmp_path, model_file, photos, capsys, arguments, message):
    (tmp_path / "empty_folder").mkdir()
    values = {"photos": photos, "tmp": tmp_path, "model": model_file[0]}
    assert predict.main([argument.format(**values) for argument in arguments]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and message in error
    assert len(error.strip().splitlines()) == 1


def test_predict_runs_as_a_module_without_prefect(tmp_path, model_file, photos):
    """``python -m flows.predict`` works and never imports Prefect (no server starts)."""
    output = tmp_path / "p.csv"
    script = ("import runpy, sys; sys.argv = ['flows.predict', *sys.argv[1:]]\n"
              "try:\n    runpy.run_module('flows.predict', run_name='__main__')\n"
              "except SystemExit as done:\n    assert done.code == 0, done.code\n"
              "assert 'prefect' not in sys.modules, 'prefect was imported'\n")
    result = subprocess.run(
        [sys.executable, "-c", script, str(photos), "--model", str(model_file[0]), "--output", str(output)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "3 images;" in result.stdout and len(pd.read_csv(output)) == 3


# --- layout -------------------------------------------------------------------------------------


def one_hot_table(indices: list[int], sources: list[str], clusters: list[int], confidence: float = 0.9,
                  num_clusters: int = 3) -> pd.DataFrame:
    probabilities = np.full((len(clusters), num_clusters), (1 - confidence) / (num_clusters - 1), np.float32)
    probabilities[np.arange(len(clusters)), clusters] = confidence
    return predictions_table(np.array(indices), sources, probabilities)


def folder_contents(output: Path) -> dict[str, set[str]]:
    return {folder.name: {entry.name for entry in folder.iterdir()}
            for folder in sorted(output.iterdir()) if folder.is_dir()}


def test_layout_links_folder_images_into_one_folder_per_cluster(tmp_path, photos, capsys):
    (photos / "b" / "0.png").write_bytes((photos / "a" / "0.png").read_bytes())  # same name as a/0.png
    sources = ["a/0.png", "a/1.png", "b/0.png", "b/2.png"]
    predictions = tmp_path / "predictions.parquet"
    one_hot_table([0, 1, 2, 3], sources, [2, 0, 2, 0]).to_parquet(predictions)
    output = tmp_path / "clusters"

    code = layout.main(["--predictions", str(predictions), "--root", str(photos), "--output", str(output)])

    assert code == 0
    assert folder_contents(output) == {"cluster_00": {"1.png", "2.png"}, "cluster_01": set(),
                                       "cluster_02": {"0_0.png", "2_0.png"}}
    index = pd.read_csv(output / "index.csv")
    assert list(index.columns) == ["source", "cluster", "confidence", "file"]
    assert index["source"].tolist() == sources
    for source, cluster, file in zip(index["source"], index["cluster"], index["file"]):
        placed = output / file
        assert placed.parent.name == f"cluster_{cluster:02d}"
        assert placed.is_symlink() and placed.resolve() == (photos / source).resolve()
    assert "laid out 4 images in 3 cluster folders" in capsys.readouterr().out


def test_layout_copies_and_filters_by_confidence_and_reads_root_from_params(tmp_path, photos, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text(yaml.safe_dump({"data": {"name": "folder", "root": "photos"}}))
    table = pd.concat([one_hot_table([0, 1], ["a/0.png", "a/1.png"], [1, 1], confidence=0.95),
                       one_hot_table([2], ["b/2.png"], [0], confidence=0.5)], ignore_index=True)
    table.to_parquet("predictions.parquet")

    code = layout.main(["--predictions", "predictions.parquet", "--output", "out", "--mode", "copy",
                        "--min-confidence", "0.9"])

    assert code == 0
    assert folder_contents(Path("out")) == {"cluster_00": set(), "cluster_01": {"0.png", "1.png"},
                                            "cluster_02": set()}
    copied = Path("out/cluster_01/0.png")
    assert not copied.is_symlink() and copied.read_bytes() == (photos / "a/0.png").read_bytes()
    assert pd.read_csv("out/index.csv")["source"].tolist() == ["a/0.png", "a/1.png"]


def test_layout_writes_pngs_for_an_array_data_set(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, size=(6, 8, 8, 1), dtype=np.uint8)
    np.save(tmp_path / "images.npy", images)
    rows = [0, 2, 3, 5]
    predictions = tmp_path / "predictions.parquet"
    one_hot_table(rows, [f"digits:all:{row}" for row in rows], [1, 0, 1, 1]).to_parquet(predictions)
    output = tmp_path / "clusters"

    code = layout.main(["--predictions", str(predictions), "--images", str(tmp_path / "images.npy"),
                        "--output", str(output), "--params", str(tmp_path / "no-params.yaml")])

    assert code == 0
    assert folder_contents(output) == {"cluster_00": {"digits_all_2.png"},
                                       "cluster_01": {"digits_all_0.png", "digits_all_3.png", "digits_all_5.png"},
                                       "cluster_02": set()}
    index = pd.read_csv(output / "index.csv")
    for source, file in zip(index["source"], index["file"]):
        row = int(source.rsplit(":", 1)[1])
        np.testing.assert_array_equal(np.asarray(Image.open(output / file)), images[row, ..., 0])


def test_layout_refuses_a_non_empty_output_unless_forced(tmp_path, photos, capsys):
    predictions = tmp_path / "predictions.parquet"
    one_hot_table([0, 1], ["a/0.png", "a/1.png"], [0, 1]).to_parquet(predictions)
    output = tmp_path / "clusters"
    arguments = ["--predictions", str(predictions), "--root", str(photos), "--output", str(output)]
    assert layout.main(arguments) == 0
    (output / "notes.txt").write_text("mine")

    assert layout.main(arguments) == 2
    assert "is not empty; pass --force" in capsys.readouterr().err

    one_hot_table([0, 1], ["a/0.png", "a/1.png"], [2, 2]).to_parquet(predictions)
    assert layout.main([*arguments, "--force"]) == 0
    assert folder_contents(output) == {"cluster_00": set(), "cluster_01": set(), "cluster_02": {"0.png", "1.png"}}
    assert (output / "notes.txt").read_text() == "mine"  # only the earlier layout is replaced
    assert (photos / "a" / "0.png").is_file()  # removing links never touches the images


def test_layout_names_missing_images_before_writing_anything(tmp_path, photos, capsys):
    predictions = tmp_path / "predictions.parquet"
    one_hot_table([0, 1], ["a/0.png", "gone.png"], [0, 1]).to_parquet(predictions)
    output = tmp_path / "clusters"

    assert layout.main(["--predictions", str(predictions), "--root", str(photos), "--output", str(output)]) == 2
    assert "gone.png" in capsys.readouterr().err
    assert not output.exists()


def test_predict_then_layout_of_its_csv(tmp_path, model_file, photos, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert predict.main(["photos", "--model", str(model_file[0]), "--output", "p.csv"]) == 0
    assert layout.main(["--predictions", "p.csv", "--root", ".", "--output", "clusters"]) == 0

    table = pd.read_csv("p.csv")
    contents = folder_contents(Path("clusters"))
    assert set(contents) == {f"cluster_{k:02d}" for k in range(4)}
    for source, cluster in zip(table["source"], table["cluster"]):
        assert Path(source).name in contents[f"cluster_{cluster:02d}"]
