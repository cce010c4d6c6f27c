"""Backbones with weights trained elsewhere (``pretext.method: pretrained``).

The weights come from torchvision's registry (``pretext.weights: IMAGENET1K_V2``, a member
of the architecture's weights enum, kept in ``$TORCH_HOME/hub/checkpoints``) or from a
local file: a torchvision state dict, or a MoCo checkpoint whose query encoder
(``module.encoder_q.``; MoCo v3: ``module.base_encoder.``) is the backbone. The classifier
or projection MLP (``fc.*``) is dropped; every other backbone tensor must be found with
its shape, so a checkpoint of another architecture fails with the keys that do not fit.
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from pathlib import Path

import torch
from torch import Tensor, nn

from scan_core.checkpoint import load_checkpoint
from scan_core.models import build_backbone
from scan_core.names import WEIGHTS_DIR, is_weights_file

# Backbones that are torchvision architectures of the same name (their registry weights fit).
REGISTRY_BACKBONES = ("resnet18", "resnet50")
# Where a checkpoint keeps the backbone, tried in this order: MoCo v1/v2 (DataParallel or
# not), MoCo v3, a DataParallel-wrapped network, a plain torchvision state dict.
ENCODER_PREFIXES = ("module.encoder_q.", "encoder_q.", "module.base_encoder.", "base_encoder.", "module.", "")
HEAD_PREFIX = "fc."  # torchvision's classifier, MoCo's projection MLP
OPTIONAL_SUFFIX = "num_batches_tracked"  # a BatchNorm counter, not a weight; old checkpoints lack it
REACHABLE_TIMEOUT_S = 10


def pretrained_backbone(name: str, in_channels: int, weights: str | None) -> nn.Module:
    """``build_backbone(name, in_channels)`` carrying the weights ``weights`` names."""
    if not weights:
        raise ValueError(f"pretext.weights is required with pretext.method: pretrained; use a torchvision "
                         f"weights name (e.g. IMAGENET1K_V1) or a file in {WEIGHTS_DIR}/")
    if is_weights_file(weights):
        state, source = read_weights_file(Path(weights)), weights
    else:
        state, source = registry_state_dict(name, weights), f"torchvision's {name} {weights}"
    backbone = build_backbone(name, in_channels)
    load_backbone_state(backbone, state, source)
    return backbone


def registry_state_dict(name: str, weights: str) -> dict[str, Tensor]:
    """The state dict of torchvision's ``weights`` for architecture ``name``: read from
    ``$TORCH_HOME/hub/checkpoints`` when there, else downloaded there; either way checked
    against the sha256 prefix in torchvision's file name."""
    from torchvision.models import get_model_weights

    if name not in REGISTRY_BACKBONES:
        raise ValueError(f"pretext.backbone = {name!r} has no torchvision weights; use one of "
                         f"{', '.join(REGISTRY_BACKBONES)}, or a local file in {WEIGHTS_DIR}/")
    members = get_model_weights(name).__members__
    if weights not in members:
        raise ValueError(f"pretext.weights = {weights!r} is not a torchvision weights name of {name}; valid: "
                         f"{', '.join(members)}, or a local file given as {WEIGHTS_DIR}/<file>")
    url = members[weights].url
    target = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
    if not target.exists():
        _check_reachable(url, target, weights)
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(target), progress=False)
    expected = url.rsplit("-", 1)[-1].split(".")[0]  # torchvision names files <arch>-<sha256 prefix>.pth
    if not hashlib.sha256(target.read_bytes()).hexdigest().startswith(expected):  # read whole by torch.load anyway
        raise ValueError(f"{target} is not torchvision's {name} {weights} file (its sha256 does not start with "
                         f"{expected}); delete it to download it again, or put the right file there")
    return load_checkpoint(target)


def unreachable_reason(url: str) -> str | None:
    """Why ``url`` cannot be reached now (a HEAD request), or None. A fresh opener each time,
    so that the proxy settings in force now apply."""
    try:
        with urllib.request.build_opener().open(urllib.request.Request(url, method="HEAD"),
                                                timeout=REACHABLE_TIMEOUT_S):
            return None
    except (urllib.error.URLError, OSError) as error:
        return str(getattr(error, "reason", error))


def _check_reachable(url: str, target: Path, weights: str) -> None:
    """Fail fast, in one line saying what to do, where the download cannot start."""
    if (reason := unreachable_reason(url)) is not None:
        raise FileNotFoundError(
            f"pretext.weights = {weights}: cannot download {url} ({reason}); put that file at {target} "
            f"(TORCH_HOME's checkpoints folder) or set pretext.weights to a local file in {WEIGHTS_DIR}/")


def read_weights_file(path: Path) -> dict[str, Tensor]:
    """The backbone tensors of a local torchvision state dict or MoCo checkpoint."""
    if not path.is_file():
        raise FileNotFoundError(f"pretext.weights = {path.as_posix()}: no such file; put the weights file there")
    return backbone_tensors(load_checkpoint(path), path.as_posix())


def backbone_tensors(checkpoint: dict, source: str) -> dict[str, Tensor]:
    """Unwrap ``{"state_dict": ...}`` / ``{"model": ...}``, keep the encoder's keys under the
    first prefix of ``ENCODER_PREFIXES`` that any key has (prefix removed), drop ``fc.*``."""
    state = checkpoint
    for wrapper in ("state_dict", "model"):
        if isinstance(state.get(wrapper), dict):
            state = state[wrapper]
            break
    tensors = {key: value for key, value in state.items() if isinstance(value, Tensor)}
    if not tensors:
        raise ValueError(f"{source} holds no tensors; expected a state dict or a MoCo checkpoint")
    prefix = next(prefix for prefix in ENCODER_PREFIXES if any(key.startswith(prefix) for key in tensors))
    kept = {key[len(prefix):]: value for key, value in tensors.items() if key.startswith(prefix)}
    return {key: value for key, value in kept.items() if not key.startswith(HEAD_PREFIX)}


def load_backbone_state(backbone: nn.Module, state: dict[str, Tensor], source: str) -> None:
    """Copy ``state`` into ``backbone``; every backbone tensor must be there with its shape.

    A grayscale backbone takes RGB weights of its first convolution summed over the colour
    axis: the same output as the RGB network on the gray image repeated in 3 channels.
    """
    expected = backbone.state_dict()
    state = dict(state)
    for key, value in expected.items():
        found = state.get(key)
        if found is not None and found.dim() == 4 and value.shape[1] == 1 and found.shape[1] == 3 \
                and found.shape[0] == value.shape[0] and found.shape[2:] == value.shape[2:]:
            state[key] = found.sum(dim=1, keepdim=True)
    missing = [key for key in expected if key not in state and not key.endswith(OPTIONAL_SUFFIX)]
    unexpected = [key for key in state if key not in expected]
    wrong = [f"{key} {tuple(state[key].shape)} (need {tuple(value.shape)})" for key, value in expected.items()
             if key in state and state[key].shape != value.shape]
    problems = [f"{label}: {', '.join(keys[:8])}{' ...' if len(keys) > 8 else ''} ({len(keys)})"
                for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
                if keys]
    if problems:
        raise ValueError(f"{source} does not fit the backbone: " + "; ".join(problems))
    backbone.load_state_dict({key: state.get(key, value) for key, value in expected.items()})
