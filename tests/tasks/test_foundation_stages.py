"""A frozen foundation backbone end to end on a folder of digits: pretext records the model's own
preprocessing, embed writes its features, scan and selflabel train heads on cached features
(no image is read per epoch: the rows read do not grow with the epochs), and the model file
predicts what the stages predicted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from prefect.logging import disable_run_logger

timm = pytest.importorskip("timm")

from scan_core.config import ParamsError, validate_params  # noqa: E402
from scan_core.model_files import load_clustering_model  # noqa: E402
from scan_core.training import common  # noqa: E402
from tasks.stages import stage_params  # noqa: E402

VIT = "timm/test_vit"  # 160 px, 64-d features, mean = std = 0.5
PER_CLASS = 20
COUNT = 10 * PER_CLASS
FOUNDATION = {"method": "pretrained", "backbone": VIT, "weights": "weights/test_vit.pth"}




def _digits_folder(root: Path) -> None:
    """The first 20 digits of each class as 8 px PNGs in class folders."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for label in range(10):
        (root / str(label)).mkdir(parents=True)
        for number, index in enumerate(np.flatnonzero(digits.target == label)[:PER_CLASS]):
            pixels = (digits.images[index] * 255 / 16).astype(np.uint8)
            Image.fromarray(pixels).save(root / str(label) / f"{number}.png")


def _params(scan_epochs: int, selflabel_epochs: int):
    return validate_params({"data": {"name": "folder", "root": "images"}, "pretext": FOUNDATION, "mine": {"topk": 5},
                            "scan": {"num_neighbors": 5, "epochs": scan_epochs, "num_heads": 2},
                            "selflabel": {"epochs": selflabel_epochs, "threshold": 0.5}})


@pytest.fixture
def rows_read(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every image row read from the store by any stage, batch by batch."""
    reads: list[int] = []
    original = common.read_rows

    def counting(images, rows):
        reads.append(len(rows))
        return original(images, rows)

    monkeypatch.setattr(common, "read_rows", counting)
    return reads


def test_frozen_foundation_backbone_on_a_folder_of_digits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows_read) -> None:
    from tasks.embed import embed
    from tasks.mine import mine
    from tasks.prepare import prepare
    from tasks.pretext import pretext
    from tasks.scan import scan
    from tasks.selflabel import selflabel

    monkeypatch.chdir(tmp_path)
    _digits_folder(tmp_path / "images")
    (tmp_path / "weights").mkdir()
    torch.manual_seed(0)
    torch.save(timm.create_model("test_vit", pretrained=False).state_dict(), tmp_path / FOUNDATION["weights"])
    reads_per_run = {}
    with disable_run_logger():
        prepare.fn(stage_params(_params(1, 1), "prepare"), {})
        pretext.fn(stage_params(_params(1, 1), "pretext"), {})
        embed.fn(stage_params(_params(1, 1), "embed"), {})
        mine.fn(stage_params(_params(1, 1), "mine"), {})
        for epochs in (1, 3):
            rows_read.clear()
            scan.fn(stage_params(_params(epochs, epochs), "scan"), {})
            selflabel.fn(stage_params(_params(epochs, epochs), "selflabel"), {})
            reads_per_run[epochs] = sum(rows_read)

    settings = json.loads(Path("artifacts/pretext/settings.json").read_text())
    assert settings["preprocessing"] == {"input_size": 160, "mean": [0.5] * 3, "std": [0.5] * 3,
                                         "interpolation": "bicubic"}
    assert np.load("artifacts/embed/backbone_features.npy").shape == (COUNT, 64)
    summary = json.loads(Path("artifacts/scan/summary.json").read_text())["settings"]
    assert (summary["update_backbone"], summary["augmentation"], summary["lr"]) == (False, "none", 0.01)
    assert len(json.loads(Path("artifacts/selflabel/summary.json").read_text())["history"]) >= 1
    # scan: one backbone pass for the cached features, one for the predictions table; the same for
    # selflabel; however many epochs.
    assert reads_per_run[1] == reads_per_run[3] == 4 * COUNT

    model, description = load_clustering_model("artifacts/selflabel/model.pt")
    assert description["heads_on_features"] and description["preprocessing"]["input_size"] == 160
    assert tuple(description["mean"]) == (0.0,) and tuple(description["std"]) == (1.0,)  # it normalises itself
    assert torch.equal(model.backbone.network.state_dict()["cls_token"],
                       torch.load(FOUNDATION["weights"])["cls_token"])
    table = pd.read_parquet("artifacts/selflabel/predictions.parquet")
    digits = torch.from_numpy(np.load("artifacts/prepare/images.npy")[:8]).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        predicted = model.eval()(digits)[0].argmax(dim=1).numpy()
    assert np.array_equal(predicted, table["cluster"].to_numpy()[:8])


@pytest.mark.parametrize(("raw", "message"), [
    ({"pretext": {"backbone": VIT}}, "foundation model, used frozen with its own weights: set pretext.method: pretrained"),
    ({"pretext": {"method": "pretrained", "backbone": "timm/"}}, "unknown backbone 'timm/'"),
    ({"pretext": {"method": "pretrained", "backbone": "dinov2"}}, r"timm/<model> / open_clip/<architecture>:<tag>"),
])
def test_params_refuse_foundation_settings_that_cannot_work(raw, message) -> None:
    with pytest.raises(ParamsError, match=message):
        validate_params(raw)
