"""scan cluster with a foundation backbone: the name and the weights are checked before
anything is made, each failure in one ``error:`` line with exit code 2; a good name sets the
frozen, pretrained settings at the model's own input side."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("timm")

from flows import cli  # noqa: E402


@pytest.fixture
def offline_empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from huggingface_hub import constants

    cache = tmp_path / "hf" / "hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "photos").mkdir()
    monkeypatch.chdir(tmp_path)
    return cache


def _error_of(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    return lines[0]


def test_no_weights_and_no_network_stops_in_one_line_before_anything_is_made(offline_empty_cache, capsys) -> None:
    error = _error_of(["cluster", "photos", "--project", "project", "--backbone", "timm/test_vit"], capsys)
    assert f"{offline_empty_cache}/models--timm--test_vit.r160_in1k/snapshots/<revision>/model.safetensors" in error
    assert "hf download timm/test_vit.r160_in1k model.safetensors" in error
    assert not Path("project").exists()


@pytest.mark.parametrize(("backbone", "complaint"), [("timm/no_such_net", "timm has no model 'no_such_net'"),
                                                     ("open_clip/ViT-B-32:nope", "no weights 'nope' for ViT-B-32")])
def test_an_unknown_model_is_named(offline_empty_cache, capsys, backbone, complaint) -> None:
    assert complaint in _error_of(["cluster", "photos", "--project", "project", "--backbone", backbone], capsys)
    assert not Path("project").exists()


def test_a_missing_weights_file_is_named(offline_empty_cache, capsys) -> None:
    error = _error_of(["cluster", "photos", "--backbone", "timm/test_vit", "--weights", "absent.pth"], capsys)
    assert error == "error: --weights absent.pth: no such file"


def test_a_foundation_backbone_means_pretrained_weights_at_its_own_side() -> None:
    args = cli.build_parser().parse_args(["cluster", "photos", "--backbone", "timm/test_vit", "--weights", "w.pth"])
    assert cli.cluster_options(args) == {"pretext.method": "pretrained", "data.image_size": 160,
                                         "pretext.backbone": "timm/test_vit", "pretext.weights": "weights/w.pth"}
    args = cli.build_parser().parse_args(["cluster", "photos", "--backbone", "timm/test_vit", "-S",
                                          "data.image_size=96"])
    assert cli.cluster_options(args)["data.image_size"] == 96
