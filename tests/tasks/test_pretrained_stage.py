"""pretext.method: pretrained end to end on digits: pretext writes the backbone with the
given weights and no projection head, embed writes its 512-d features (ResNet-18) in both
feature files, mine mines on them; the weights file is part of pretext's cache key, and
params refuse what cannot work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision
from prefect.logging import disable_run_logger

from scan_core.config import ParamsError, validate_params
from scan_core.model_files import load_contrastive_model
from tasks.common import source_inputs
from tasks.stages import stage_params

PRETRAINED = {"method": "pretrained", "backbone": "resnet18", "weights": "weights/resnet18.pth"}


def _write_weights(path: Path, seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    state = torchvision.models.resnet18().state_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


def test_pretrained_pretext_embed_and_mine_on_digits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tasks.embed import embed
    from tasks.mine import mine
    from tasks.prepare import prepare
    from tasks.pretext import pretext

    monkeypatch.chdir(tmp_path)
    source = _write_weights(tmp_path / PRETRAINED["weights"], seed=0)
    params = validate_params({"pretext": PRETRAINED, "mine": {"topk": 5}, "scan": {"num_neighbors": 5}})
    with disable_run_logger():
        prepare.fn(stage_params(params, "prepare"), {})
        pretext.fn(stage_params(params, "pretext"), {})
        embed.fn(stage_params(params, "embed"), {})
        mine.fn(stage_params(params, "mine"), {})

    model, description = load_contrastive_model("artifacts/pretext/model.pt")
    assert description == {"backbone": "resnet18", "in_channels": 1, "projection_dim": None}
    assert not model.has_projection
    # digits are grayscale: the RGB first convolution is summed over colours, the rest is as given
    assert torch.equal(model.backbone.conv1.weight, source["conv1.weight"].sum(dim=1, keepdim=True))
    assert torch.equal(model.backbone.layer4[1].bn2.running_var, source["layer4.1.bn2.running_var"])
    features = np.load("artifacts/embed/backbone_features.npy")
    assert features.shape == (1797, 512)
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, rtol=1e-5)
    assert np.array_equal(np.load("artifacts/embed/embeddings.npy"), features)
    neighbors = pd.read_parquet("artifacts/mine/neighbors.parquet")
    assert len(neighbors) == 1797 * 5
    similarities = features @ features[0]
    similarities[0] = -np.inf  # an image is not its own neighbor
    first = neighbors[(neighbors.anchor == 0) & (neighbors["rank"] == 1)]
    assert first.neighbor.item() == int(np.argmax(similarities))


def test_the_weights_file_is_part_of_pretexts_cache_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    params = stage_params(validate_params({"pretext": PRETRAINED}), "pretext")
    assert source_inputs("pretext", params) == {}  # not there yet: the stage itself says so
    _write_weights(tmp_path / PRETRAINED["weights"], seed=0)
    first = source_inputs("pretext", params)
    assert list(first) == ["pretext.weights"] and list(first["pretext.weights"]) == [PRETRAINED["weights"]]
    _write_weights(tmp_path / PRETRAINED["weights"], seed=1)
    assert source_inputs("pretext", params) != first
    simclr = stage_params(validate_params({"pretext": {**PRETRAINED, "method": "simclr"}}), "pretext")
    assert source_inputs("pretext", simclr) == {}


@pytest.mark.parametrize(("raw", "message"), [
    ({"pretext": PRETRAINED, "mine": {"space": "projection"}},
     "mine.space = 'projection' is invalid with pretext.method = 'pretrained' (a pretrained backbone has no "
     "projection head); use mine.space: backbone"),
    ({"pretext": {**PRETRAINED, "weights": "/elsewhere/moco.pth"}},
     "pretext.weights = '/elsewhere/moco.pth' is invalid: a local weights file must lie in the project's weights/"),
    ({"pretext": {**PRETRAINED, "weights": "weights/../moco.pth"}}, "must lie in the project's weights/"),
])
def test_params_refuse_what_a_pretrained_backbone_cannot_do(raw: dict, message: str) -> None:
    with pytest.raises(ParamsError) as raised:
        validate_params(raw)
    assert message in str(raised.value) and "\n" not in str(raised.value)
