"""Later stages follow the recipe prepare recorded in dataset.json: their auto keys take its
values, explicit params win, and the log says which values the recipe chose."""

from __future__ import annotations

import importlib
import json
import logging

import numpy as np
import pytest
from PIL import Image

from scan_core.config import Params
from tasks.compute import augment_settings
from tasks.stages import group, stage_params

prepare_module = importlib.import_module("tasks.prepare")
pretext_module = importlib.import_module("tasks.pretext")


def _photos(root, count: int = 20, side: int = 40) -> str:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    for index in range(count):
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(root / f"{index:02d}.png")
    return str(root)


@pytest.fixture
def photo_project(tmp_path, monkeypatch):
    """A project folder whose prepare stage has run on 20 colour images of 40 px."""
    monkeypatch.chdir(tmp_path)
    for module in (prepare_module, pretext_module):
        monkeypatch.setattr(module, "get_run_logger", lambda: logging.getLogger("stage"))
    params = Params.model_validate({"data": {"name": "folder", "root": _photos(tmp_path / "photos")}})
    prepare_module.prepare.fn(stage_params(params, "prepare"), {})
    return json.loads((tmp_path / "artifacts/prepare/dataset.json").read_text())


def test_augment_auto_keys_take_the_recorded_recipe_and_explicit_ones_win(photo_project, caplog):
    caplog.set_level(logging.INFO, logger="stage")
    logger = logging.getLogger("stage")
    augment = group(stage_params(Params(), "scan"), "augment")
    settings = augment_settings("scan", photo_project, augment, logger)
    chosen = (settings.hflip, settings.rotation, settings.crop_min_scale, settings.jitter_strength)
    assert chosen == (True, 0.0, 0.35, 0.5)
    assert (settings.strong_ops, settings.cutout_fraction) == (2, 0.25)
    assert "scan augment settings: hflip=True (auto: photo), crop_min_scale=0.35 (auto: photo)" in caplog.text
    explicit = group(stage_params(Params.model_validate({"augment": {"hflip": False, "rotation": 5}}), "scan"),
                     "augment")
    settings = augment_settings("scan", photo_project, explicit, logger)
    assert (settings.hflip, settings.rotation, settings.crop_min_scale) == (False, 5.0, 0.35)
    assert "hflip=False, crop_min_scale=0.35 (auto: photo), jitter_strength=0.5 (auto: photo), rotation=5.0," \
        in caplog.text


def test_a_dataset_json_without_a_recipe_asks_for_prepare_again():
    with pytest.raises(FileNotFoundError, match="rerun prepare"):
        augment_settings("scan", {"mean": [0.5], "std": [0.5]}, {"hflip": "auto"}, logging.getLogger("stage"))


def test_pretext_takes_its_backbone_from_the_recipe_and_logs_it(photo_project, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="stage")
    params = Params.model_validate({"pretext": {"epochs": 1, "batch_size": 8}})
    pretext_module.pretext.fn(stage_params(params, "pretext"), {})
    settings = json.loads((tmp_path / "artifacts/pretext/settings.json").read_text())
    assert (settings["backbone"], settings["epochs"], settings["batch_size"]) == ("small_cnn", 1, 8)
    assert "backbone=small_cnn (auto: photo), epochs=1, batch_size=8" in caplog.text
    assert "pretext augment settings: hflip=True (auto: photo)" in caplog.text
