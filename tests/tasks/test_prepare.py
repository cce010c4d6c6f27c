"""prepare: the splits it trains and evaluates on, mixed labels, and data.download reaching
torchvision (faked here: the test machine has no network)."""

from __future__ import annotations

import importlib
import json
import logging

import pandas as pd
import pytest
import torchvision.datasets
import yaml

from scan_core.config import Params
from tasks.stages import stage_params
from tests.conftest import PROJECT_ROOT
from tests.data import format_fixtures as fixtures

prepare_module = importlib.import_module("tasks.prepare")  # the module, not the task of the same name


def _run_prepare(tmp_path, monkeypatch, **data) -> tuple[dict, pd.DataFrame]:
    """The prepare stage in ``tmp_path``, called as a plain function (no Prefect run)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(prepare_module, "get_run_logger", lambda: logging.getLogger("prepare"))
    download = data.pop("download", False)
    # What a user gets: the project's params.yaml, with only the keys a test names changed.
    defaults = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())["data"]
    params = stage_params(Params.model_validate({"data": {**defaults, **data}}), "prepare")
    # prepare's own params (tasks/stages.py, dvc.yaml) must list data.download for the
    # pipeline to pass it; the body takes it from there.
    params["data.download"] = download
    prepare_module.prepare.fn(params, {})
    info = json.loads((tmp_path / "artifacts/prepare/dataset.json").read_text())
    return info, pd.read_parquet(tmp_path / "artifacts/prepare/manifest.parquet")


class _FakeTorchvision:
    """Stands in for a torchvision data set class: records its arguments, 'downloads' a fixture."""

    def __init__(self, write):
        self.calls: list[tuple[tuple, dict]] = []
        self.write = write

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        self.write()
        return self


def test_download_reaches_torchvision(tmp_path, monkeypatch):
    root = tmp_path / "cifar"
    fake = _FakeTorchvision(lambda: fixtures.write_cifar10(root))
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", fake)
    info, _ = _run_prepare(tmp_path, monkeypatch, name="cifar10", root=str(root), train_split="train",
                           eval_split="test", download=True)
    assert fake.calls and fake.calls[0][1].get("download") is True
    assert fake.calls[0][0] == (str(root),)
    assert (info["num_train"], info["num_eval"]) == (10, 2)


def test_without_download_torchvision_is_not_called(tmp_path, monkeypatch):
    fake = _FakeTorchvision(lambda: None)
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", fake)
    with pytest.raises(FileNotFoundError, match="download=True"):
        _run_prepare(tmp_path, monkeypatch, name="cifar10", root=str(tmp_path / "nowhere"), train_split="train",
                     eval_split="test")
    assert fake.calls == []


def test_cifar_default_trains_on_train_and_evaluates_on_test(tmp_path, monkeypatch):
    fixtures.write_cifar10(tmp_path / "cifar")
    info, manifest = _run_prepare(tmp_path, monkeypatch, name="cifar10", root=str(tmp_path / "cifar"))
    assert (info["train_split"], info["eval_split"]) == ("train", "test")
    assert manifest["in_train"].sum() == 10 and manifest["in_eval"].sum() == 2
    assert not (manifest["in_train"] & manifest["in_eval"]).any()
    assert manifest.loc[manifest["in_eval"], "source"].str.startswith("cifar10:test:").all()


def test_digits_default_still_trains_and_evaluates_on_all(tmp_path, monkeypatch):
    info, manifest = _run_prepare(tmp_path, monkeypatch, name="digits")
    assert (info["train_split"], info["eval_split"]) == ("all", "all")
    assert manifest["in_train"].all() and manifest["in_eval"].all() and info["has_labels"]


def test_stl_train_plus_unlabeled_keeps_labels_where_known(tmp_path, monkeypatch):
    written = fixtures.write_stl10(tmp_path / "stl", {"train": 3, "test": 2, "unlabeled": 4})
    info, manifest = _run_prepare(tmp_path, monkeypatch, name="stl10", root=str(tmp_path / "stl"),
                                  image_size=16, train_split="train+unlabeled")
    assert (info["train_split"], info["eval_split"]) == ("train+unlabeled", "test")
    train = manifest[manifest["in_train"]]
    assert train["label"].tolist() == written["train"][1].tolist() + [-1] * 4
    assert manifest.loc[manifest["in_eval"], "label"].tolist() == written["test"][1].tolist()
    assert info["has_labels"] and info["num_labeled_eval"] == 2

    # Evaluating on unlabeled images only: no labels to score with.
    info, _ = _run_prepare(tmp_path, monkeypatch, name="stl10", root=str(tmp_path / "stl"),
                           image_size=16, train_split="train", eval_split="unlabeled")
    assert not info["has_labels"] and info["num_labeled_eval"] == 0


def test_folder_prepared_by_streaming_matches_decoding_in_memory(tmp_path, monkeypatch):
    """images.npy, the manifest's content hashes and dataset.json's mean/std are what decoding
    the whole folder into memory gives (float64 statistics over the training pixels), and an
    unreadable file is listed as skipped."""
    import hashlib

    import numpy as np
    from PIL import Image

    from scan_core.data.sources import load_image_set

    rng = np.random.default_rng(3)
    for index in range(9):
        folder = tmp_path / "photos" / ("a" if index < 5 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (12 + index, 10, 3), dtype=np.uint8)).save(folder / f"{index}.png")
    (tmp_path / "photos" / "b" / "broken.png").write_bytes(b"\x89PNG")
    info, manifest = _run_prepare(tmp_path, monkeypatch, name="folder", root=str(tmp_path / "photos"),
                                  image_size=8, on_bad_image="skip")
    expected = load_image_set("folder", "all", tmp_path / "photos", image_size=8, on_bad_image="skip")
    stored = np.load(tmp_path / "artifacts/prepare/images.npy")
    np.testing.assert_array_equal(stored, expected.images)
    assert manifest["source"].tolist() == expected.sources and manifest["label"].tolist() == [0] * 5 + [1] * 4
    assert manifest["content_hash"].tolist() == [hashlib.sha256(image.tobytes()).hexdigest() for image in stored]
    pixels = expected.images.astype(np.float64) / 255.0
    assert info["mean"] == pixels.mean(axis=(0, 1, 2)).round(6).tolist()
    assert info["std"] == pixels.std(axis=(0, 1, 2)).round(6).tolist()
    assert [entry["source"] for entry in info["skipped"]] == ["b/broken.png"]
    assert (info["num_images"], info["channels"], info["image_size"]) == (9, 3, 8)


def _folder(root, count: int, size: tuple[int, int], mode: str) -> str:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(5)
    root.mkdir(parents=True)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    for index in range(count):
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode).save(root / f"{index:02d}.png")
    return str(root)


def test_digits_record_the_small_grayscale_recipe_with_todays_values(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="prepare")
    info, _ = _run_prepare(tmp_path, monkeypatch, name="digits")
    recipe = info["recipe"]
    assert (recipe["name"], recipe["channels"], recipe["native_side"], recipe["num_images"]) == \
        ("small_grayscale", 1, 8, 1797)
    assert recipe["values"] == {"data.image_size": 8, "augment.hflip": False, "augment.rotation": 15.0,
                                "augment.crop_min_scale": 0.6, "augment.jitter_strength": 0.4,
                                "pretext.backbone": "small_cnn", "scan.update_backbone": True, "scan.augmentation": "strong",
                                "scan.lr": 5e-4, "pretext.epochs": 100, "scan.epochs": 40,
                                "selflabel.epochs": 20}
    assert info["image_size"] == 8
    lines = [record.getMessage() for record in caplog.records if record.getMessage().startswith("recipe ")]
    assert len(lines) == 1 and lines[0].startswith("recipe small_grayscale (1 channel, native side 8 px, 1,797 images")


def test_a_colour_folder_records_the_photo_recipe_and_is_stored_at_its_side(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="prepare")
    root = _folder(tmp_path / "photos", 12, (60, 48), "RGB")
    info, _ = _run_prepare(tmp_path, monkeypatch, name="folder", root=root)
    recipe = info["recipe"]
    assert (recipe["name"], recipe["reason"], recipe["channels"], recipe["native_side"]) == ("photo", "colour", 3, 48)
    assert recipe["values"]["augment.hflip"] is True and recipe["values"]["pretext.backbone"] == "small_cnn"
    assert (info["image_size"], info["channels"]) == (32, 3) == (recipe["values"]["data.image_size"], 3)
    assert any(record.getMessage().startswith("recipe photo (3 channels, native side 48 px, 12 images; colour): "
                                              "hflip on, rotation 0, crop 0.35, jitter 0.5, 32 px")
               for record in caplog.records)


def test_the_rule_sees_stored_channels_and_native_side(tmp_path, monkeypatch):
    small = _folder(tmp_path / "small_gray", 6, (16, 16), "L")
    info, _ = _run_prepare(tmp_path, monkeypatch, name="folder", root=small)
    assert (info["recipe"]["name"], info["channels"], info["image_size"]) == ("small_grayscale", 1, 16)
    large = _folder(tmp_path / "large_gray", 6, (80, 80), "L")
    info, _ = _run_prepare(tmp_path, monkeypatch, name="folder", root=large)
    assert (info["recipe"]["name"], info["channels"], info["image_size"]) == ("photo", 1, 32)
    assert info["recipe"]["native_side"] == 80  # before resizing


def test_data_recipe_forces_and_an_explicit_image_size_wins(tmp_path, monkeypatch):
    root = _folder(tmp_path / "photos", 6, (80, 80), "RGB")
    info, _ = _run_prepare(tmp_path, monkeypatch, name="folder", root=root, recipe="small_grayscale")
    assert (info["recipe"]["name"], info["recipe"]["reason"]) == ("small_grayscale", "data.recipe: small_grayscale")
    assert info["image_size"] == 64 and info["recipe"]["values"]["augment.hflip"] is False
    info, _ = _run_prepare(tmp_path, monkeypatch, name="folder", root=root, image_size=20)
    assert (info["recipe"]["name"], info["image_size"]) == ("photo", 20)
    info, _ = _run_prepare(tmp_path, monkeypatch, name="digits", recipe="photo")
    assert (info["recipe"]["name"], info["image_size"]) == ("photo", 8)
