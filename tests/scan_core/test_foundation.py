"""Foundation backbones: weights from a file or the Hugging Face cache layout, each model's own
preprocessing applied inside it, one line when the weights are nowhere to be had."""

from __future__ import annotations

import json

import pytest
import torch

timm = pytest.importorskip("timm")
open_clip = pytest.importorskip("open_clip")

from scan_core import foundation  # noqa: E402
from scan_core.foundation import FoundationBackbone, load_foundation, preprocessing  # noqa: E402
from scan_core.model_files import load_contrastive_model, save_model  # noqa: E402
from scan_core.models import ContrastiveModel, build_backbone  # noqa: E402

VIT = "timm/test_vit"  # timm's own 0.3 M-parameter test ViT: 160 px, 64-d features
TINY_CLIP = "TinyClipTest"
TINY_CLIP_CONFIG = {"embed_dim": 24, "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "head_width": 32, "patch_size": 16},
                    "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 16, "heads": 2, "layers": 1}}


def random_vit_file(path) -> dict[str, torch.Tensor]:
    """What a user writes with ``timm.create_model(..., pretrained=False)``: the classifier included."""
    torch.manual_seed(3)
    state = timm.create_model(VIT[len("timm/"):], pretrained=False).state_dict()
    torch.save(state, path)
    return state


def hub_layout(cache, repo_id: str, filename: str, write) -> None:
    """The Hugging Face cache as a download leaves it: blobs, a snapshot named by a revision, refs/main."""
    revision = "0123456789abcdef0123456789abcdef01234567"
    folder = cache / f"models--{repo_id.replace('/', '--')}"
    (folder / "snapshots" / revision).mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(revision)
    write(folder / "snapshots" / revision / filename)


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty, offline Hugging Face cache."""
    from huggingface_hub import constants

    cache = tmp_path / "hf" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


@pytest.fixture
def tiny_clip(tmp_path):
    """A one-layer CLIP registered with open_clip the way a model config file is."""
    folder = tmp_path / "open_clip_configs"
    folder.mkdir()
    (folder / f"{TINY_CLIP}.json").write_text(json.dumps(TINY_CLIP_CONFIG))
    open_clip.add_model_config(folder)
    return f"open_clip/{TINY_CLIP}"


def test_timm_weights_file_loads_every_tensor_and_gives_the_models_features(tmp_path) -> None:
    state = random_vit_file(tmp_path / "vit.pth")
    backbone = load_foundation(VIT, tmp_path / "vit.pth")
    assert backbone.output_dim == 64
    loaded = backbone.network.state_dict()
    assert all(torch.equal(loaded[key], state[key]) for key in loaded)
    assert "head.weight" in state and "head.weight" not in loaded  # the classifier is not part of a backbone
    with torch.no_grad():
        assert backbone.eval()(torch.rand(2, 3, 160, 160)).shape == (2, 64)


def test_preprocessing_is_the_models_own_and_applied_inside() -> None:
    """timm's test ViT: 160 px, mean = std = 0.5. A gray 8 px image of value 0.75 reaches the
    network as three 160 px channels of (0.75 - 0.5) / 0.5 = 0.5."""
    backbone = FoundationBackbone(VIT)
    assert preprocessing(VIT) == foundation.Preprocessing(160, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bicubic")
    seen = backbone.prepare_input(torch.full((2, 1, 8, 8), 0.75))
    assert seen.shape == (2, 3, 160, 160)
    assert torch.allclose(seen, torch.full_like(seen, 0.5), atol=1e-5)
    seen = backbone.prepare_input(torch.zeros(1, 3, 160, 160))
    assert torch.allclose(seen, torch.full_like(seen, -1.0))


def test_weights_from_the_hub_cache_layout_offline(tmp_path, hub_cache) -> None:
    from safetensors.torch import save_file

    state = random_vit_file(tmp_path / "vit.pth")
    weights = foundation.hub_weights(VIT)
    assert weights.repo_id == "timm/test_vit.r160_in1k"
    hub_layout(hub_cache, weights.repo_id, "model.safetensors",
               lambda path: save_file({key: value.contiguous() for key, value in state.items()}, str(path)))
    backbone = load_foundation(VIT)
    assert torch.equal(backbone.network.state_dict()["cls_token"], state["cls_token"])


def test_without_weights_and_network_one_line_names_the_file_and_how_to_fetch_it(hub_cache) -> None:
    with pytest.raises(FileNotFoundError) as error:
        load_foundation(VIT)
    message = str(error.value)
    assert "\n" not in message
    assert f"{hub_cache}/models--timm--test_vit.r160_in1k/snapshots/<revision>/model.safetensors" in message
    assert "HF_HUB_OFFLINE" in message and "hf download timm/test_vit.r160_in1k model.safetensors" in message
    assert "--weights" in message


def test_a_file_of_another_model_names_the_keys_that_do_not_fit(tmp_path) -> None:
    torch.save(timm.create_model("test_vit2", pretrained=False).state_dict(), tmp_path / "other.pth")
    with pytest.raises(ValueError, match=r"does not fit .*(missing|wrong shape)"):
        load_foundation(VIT, tmp_path / "other.pth")


def test_open_clip_file_gives_the_image_tower_with_clips_statistics(tmp_path, tiny_clip) -> None:
    torch.manual_seed(4)
    full = open_clip.create_model(TINY_CLIP, pretrained=None)
    torch.save(full.state_dict(), tmp_path / "clip.pth")  # both towers, as open_clip's files hold them
    backbone = load_foundation(tiny_clip, tmp_path / "clip.pth")
    assert backbone.output_dim == 24
    assert backbone.preprocessing.input_size == 32
    assert backbone.preprocessing.mean == tuple(open_clip.OPENAI_DATASET_MEAN)
    pixels = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        expected = full.visual.eval()(backbone.prepare_input(pixels))
        assert torch.allclose(backbone.eval()(pixels), expected, atol=1e-5)


def test_open_clip_hub_names_follow_its_pretrained_table() -> None:
    weights = foundation.hub_weights("open_clip/ViT-B-32:laion2b_s34b_b79k")
    assert weights.repo_id == "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"
    assert weights.filenames[0] == "open_clip_model.safetensors"
    assert preprocessing("open_clip/ViT-B-32:laion2b_s34b_b79k").input_size == 224


@pytest.mark.parametrize("name, complaint", [("timm/no_such_model", "timm has no model"),
                                             ("open_clip/NoSuchArch:x", "open_clip has no architecture"),
                                             ("open_clip/ViT-B-32:nope", "open_clip has no weights 'nope'")])
def test_unknown_names_are_refused_naming_them(name, complaint) -> None:
    with pytest.raises(ValueError, match=complaint):
        foundation.check_name(name)


def test_model_file_round_trip_keeps_weights_and_preprocessing(tmp_path) -> None:
    random_vit_file(tmp_path / "vit.pth")
    backbone = load_foundation(VIT, tmp_path / "vit.pth")
    save_model(tmp_path / "pretext.pt", ContrastiveModel(backbone, projection_dim=None), backbone=VIT, in_channels=1,
               projection_dim=None, preprocessing=backbone.preprocessing.as_dict())
    model, description = load_contrastive_model(tmp_path / "pretext.pt")
    pixels = torch.rand(2, 1, 20, 20)
    with torch.no_grad():
        assert torch.allclose(model.eval()(pixels), backbone.eval()(pixels))
    assert description["preprocessing"]["input_size"] == 160
    assert isinstance(build_backbone(VIT, 1), FoundationBackbone)
