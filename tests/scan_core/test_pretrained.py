"""Pretrained backbones: torchvision state dicts and MoCo checkpoints written here load into
the backbone tensor for tensor; what does not fit, and a registry download without network,
fail with one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from scan_core.models import build_backbone
from scan_core.pretrained import (backbone_tensors, load_backbone_state, pretrained_backbone, read_weights_file,
                                  registry_state_dict)


@pytest.fixture(scope="module")
def source() -> dict[str, torch.Tensor]:
    """A randomly initialised torchvision ResNet-18's state dict (with its ImageNet ``fc``)."""
    torch.manual_seed(0)
    return torchvision.models.resnet18().state_dict()


def _moco_checkpoint(source: dict[str, torch.Tensor]) -> dict:
    """The layout of MoCo v2's ``checkpoint_0199.pth.tar``: query and key encoders with a
    projection MLP in place of ``fc``, the queue, and training bookkeeping."""
    torch.manual_seed(1)
    encoder = {key: value for key, value in source.items() if not key.startswith("fc.")}
    mlp = {"fc.0.weight": torch.randn(512, 512), "fc.0.bias": torch.randn(512),
           "fc.2.weight": torch.randn(128, 512), "fc.2.bias": torch.randn(128)}
    state = {f"module.encoder_q.{key}": value for key, value in {**encoder, **mlp}.items()}
    state |= {f"module.encoder_k.{key}": torch.randn_like(value.float()).to(value.dtype)
              for key, value in {**encoder, **mlp}.items()}
    state |= {"module.queue": torch.randn(128, 64), "module.queue_ptr": torch.zeros(1, dtype=torch.long)}
    return {"epoch": 200, "arch": "resnet18", "state_dict": state}


def _assert_same_backbone(backbone: torch.nn.Module, source: dict[str, torch.Tensor]) -> None:
    loaded = backbone.state_dict()
    assert set(loaded) == {key for key in source if not key.startswith("fc.")}
    for key, value in loaded.items():
        assert torch.equal(value, source[key]), key


def test_a_torchvision_state_dict_loads_tensor_for_tensor(tmp_path: Path, source) -> None:
    torch.save(source, tmp_path / "resnet18.pth")
    _assert_same_backbone(pretrained_backbone("resnet18", 3, str(tmp_path / "resnet18.pth")), source)


def test_a_moco_checkpoint_loads_its_query_encoder_without_the_projection(tmp_path: Path, source) -> None:
    torch.save(_moco_checkpoint(source), tmp_path / "moco.pth.tar")
    backbone = pretrained_backbone("resnet18", 3, str(tmp_path / "moco.pth.tar"))
    _assert_same_backbone(backbone, source)
    # the same network as the state dict gives: same features on the same images
    reference = torchvision.models.resnet18()
    reference.load_state_dict(source)
    reference.fc = torch.nn.Identity()
    images = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(backbone.eval()(images), reference.eval()(images))
    assert backbone(images).shape == (2, 512)


def test_moco_v3_and_dataparallel_prefixes_are_mapped(source) -> None:
    encoder = {key: value for key, value in source.items() if not key.startswith("fc.")}
    moco_v3 = {f"module.base_encoder.{key}": value for key, value in encoder.items()}
    moco_v3 |= {"module.predictor.0.weight": torch.ones(1), "module.momentum_encoder.conv1.weight": torch.ones(1)}
    assert backbone_tensors({"state_dict": moco_v3}, "v3").keys() == encoder.keys()
    data_parallel = {f"module.{key}": value for key, value in source.items()}
    assert backbone_tensors({"model": data_parallel}, "dp").keys() == encoder.keys()


def test_a_missing_tensor_is_named(tmp_path: Path, source) -> None:
    partial = {key: value for key, value in source.items() if key != "layer4.1.bn2.running_var"}
    torch.save(partial, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match=r"does not fit the backbone: missing: layer4\.1\.bn2\.running_var \(1\)$"):
        pretrained_backbone("resnet18", 3, str(tmp_path / "partial.pth"))


def test_another_architecture_is_refused_with_the_keys_that_do_not_fit(source) -> None:
    # ImageNet-stem ResNet-18 weights into the CIFAR stem: the first convolution is 3x3 there
    with pytest.raises(ValueError, match=r"wrong shape: conv1\.weight \(64, 3, 7, 7\) \(need \(64, 3, 3, 3\)\)"):
        load_backbone_state(build_backbone("resnet18_cifar", 3), backbone_tensors(source, "r18"), "r18")
    extra = backbone_tensors(source, "r18") | {"layer5.weight": torch.ones(1)}
    with pytest.raises(ValueError, match=r"unexpected: layer5\.weight"):
        load_backbone_state(build_backbone("resnet18", 3), extra, "r18")


def test_a_grayscale_backbone_sees_gray_images_as_the_rgb_network_sees_them_repeated(source) -> None:
    gray = build_backbone("resnet18", 1)
    load_backbone_state(gray, backbone_tensors(source, "r18"), "r18")
    assert torch.equal(gray.conv1.weight, source["conv1.weight"].sum(dim=1, keepdim=True))
    rgb = build_backbone("resnet18", 3)
    load_backbone_state(rgb, backbone_tensors(source, "r18"), "r18")
    images = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(gray.eval()(images), rgb.eval()(images.repeat(1, 3, 1, 1)), rtol=1e-4, atol=1e-5)


def test_a_missing_local_file_says_where_it_should_be(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file; put the weights file there"):
        read_weights_file(tmp_path / "weights" / "absent.pth")


def test_pretrained_without_weights_says_what_to_set() -> None:
    with pytest.raises(ValueError, match="pretext.weights is required with pretext.method: pretrained"):
        pretrained_backbone("resnet18", 3, None)


@pytest.fixture
def empty_torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty TORCH_HOME; every HTTP(S) request goes to a closed local port (no network, on
    any machine, within milliseconds)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for variable in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(variable, "http://127.0.0.1:9")
    for variable in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(variable, raising=False)
    return tmp_path / "torch"


def test_registry_weights_without_network_fail_in_one_line_saying_what_to_do(empty_torch_home: Path) -> None:
    with pytest.raises(FileNotFoundError) as raised:
        registry_state_dict("resnet18", "IMAGENET1K_V1")
    message = str(raised.value)
    assert "\n" not in message
    assert "cannot download https://download.pytorch.org/models/resnet18-f37072fd.pth" in message
    assert f"put that file at {empty_torch_home / 'hub/checkpoints/resnet18-f37072fd.pth'}" in message
    assert "or set pretext.weights to a local file in weights/" in message


def test_a_file_in_torch_home_that_is_not_torchvisions_is_refused(empty_torch_home: Path, source) -> None:
    target = empty_torch_home / "hub/checkpoints/resnet18-f37072fd.pth"
    target.parent.mkdir(parents=True)
    torch.save(source, target)
    with pytest.raises(ValueError, match="is not torchvision's resnet18 IMAGENET1K_V1 file"):
        registry_state_dict("resnet18", "IMAGENET1K_V1")


def test_registry_names_are_checked_against_the_architecture() -> None:
    with pytest.raises(ValueError, match="'IMAGENET1K_V2' is not a torchvision weights name of resnet18; "
                                         "valid: IMAGENET1K_V1, DEFAULT"):
        registry_state_dict("resnet18", "IMAGENET1K_V2")
    with pytest.raises(ValueError, match="'small_cnn' has no torchvision weights"):
        registry_state_dict("small_cnn", "IMAGENET1K_V1")


def test_the_papers_imagenet_recipe_a_moco_resnet50_gives_2048_d_features(tmp_path: Path) -> None:
    torch.manual_seed(2)
    encoder = {key: value for key, value in torchvision.models.resnet50().state_dict().items()
               if not key.startswith("fc.")}
    mlp = {"fc.0.weight": torch.randn(2048, 2048), "fc.2.weight": torch.randn(128, 2048)}
    state = {f"module.encoder_q.{key}": value for key, value in {**encoder, **mlp}.items()}
    torch.save({"epoch": 800, "arch": "resnet50", "state_dict": state}, tmp_path / "moco_v2_800ep.pth.tar")
    backbone = pretrained_backbone("resnet50", 3, str(tmp_path / "moco_v2_800ep.pth.tar"))
    _assert_same_backbone(backbone, encoder)
    with torch.no_grad():
        assert backbone.eval()(torch.rand(2, 3, 16, 16)).shape == (2, 2048)
