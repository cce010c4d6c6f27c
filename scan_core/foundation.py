"""Foundation backbones from timm and open_clip, used frozen with the weights their authors trained.

Names: ``timm/<model>[.<tag>]`` (any timm model, e.g. ``timm/vit_small_patch14_dinov2.lvd142m``)
and ``open_clip/<architecture>:<pretrained tag>`` (e.g. ``open_clip/ViT-B-32:laion2b_s34b_b79k``).
The strongest image-clustering systems cluster frozen features of such models with a few heads
(TEMI, TURTLE); SCAN's own ImageNet recipe does the same with a frozen MoCo ResNet-50.

Each model brings its own preprocessing (``Preprocessing``: input side, mean, std,
interpolation). ``FoundationBackbone`` applies it itself to pixels in [0, 1]: it resizes whatever
side it is given to its input side, repeats a gray channel three times and normalises with the
model's statistics. The stages therefore hand it the stored images un-normalised
(``pixel_statistics``), and a model file carries its preprocessing wherever it goes
(``scan-predict``, a notebook). Weights come from a local state dict or from the Hugging Face
cache (``hub_weights``), never silently from nowhere.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scan_core.checkpoint import load_checkpoint
from scan_core.names import FOUNDATION_PREFIXES
from scan_core.pretrained import load_backbone_state, unreachable_reason

TIMM, OPEN_CLIP = FOUNDATION_PREFIXES
EXTRA_HINT = "pip install 'scan-pipeline[foundation]' (timm, open_clip_torch)"
# Where the hub keeps a model's weights, in the order tried: safetensors first (no pickle).
TIMM_FILES = ("model.safetensors", "pytorch_model.bin")
OPEN_CLIP_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
HUB_URL = "https://huggingface.co"


@dataclass(frozen=True)
class Preprocessing:
    """What a foundation model expects of its input: a square side in px, the channel mean and
    std its weights were trained with, and the interpolation its authors resize with."""

    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mean": list(self.mean), "std": list(self.std)}

    def describe(self, stored_side: int | None = None) -> str:
        resize = f"resized from the stored {stored_side} px to" if stored_side not in (None, self.input_size) else "at"
        mean = ", ".join(f"{value:.4f}" for value in self.mean)
        std = ", ".join(f"{value:.4f}" for value in self.std)
        return (f"{resize} {self.input_size} px ({self.interpolation}), mean ({mean}), std ({std}); "
                f"a gray channel is repeated three times")


@dataclass(frozen=True)
class HubWeights:
    """Where the Hugging Face hub keeps a model's weights: repository and candidate file names."""

    repo_id: str
    filenames: tuple[str, ...]


def _require(module: str):
    try:
        return __import__(module)
    except ImportError:
        raise ImportError(f"backbones from {module} need the foundation extra: {EXTRA_HINT}") from None


def _split_open_clip(name: str) -> tuple[str, str | None]:
    architecture, _, tag = name[len(OPEN_CLIP):].partition(":")
    return architecture, tag or None


def check_name(name: str) -> None:
    """A ``ValueError`` naming what is wrong when ``name`` is not a model timm or open_clip knows."""
    if name.startswith(TIMM):
        timm = _require("timm")
        if not timm.is_model(name[len(TIMM):]):
            raise ValueError(f"pretext.backbone = {name}: timm has no model {name[len(TIMM):]!r} "
                             f"(timm.list_models() lists them)")
        return
    open_clip = _require("open_clip")
    architecture, tag = _split_open_clip(name)
    if architecture not in open_clip.list_models():
        raise ValueError(f"pretext.backbone = {name}: open_clip has no architecture {architecture!r} "
                         f"(open_clip.list_models() lists them)")
    if tag is not None and tag not in open_clip.list_pretrained_tags_by_model(architecture):
        raise ValueError(f"pretext.backbone = {name}: open_clip has no weights {tag!r} for {architecture}; "
                         f"valid: {', '.join(open_clip.list_pretrained_tags_by_model(architecture))}")


def preprocessing(name: str) -> Preprocessing:
    """The model's own preprocessing, read from its library's configuration (no weights needed)."""
    if name.startswith(TIMM):
        config = _require("timm").get_pretrained_cfg(name[len(TIMM):])
        if config is None:
            raise ValueError(f"pretext.backbone = {name}: timm has no configuration for this model")
        return Preprocessing(int(config.input_size[-1]), tuple(config.mean), tuple(config.std),
                             config.interpolation or "bicubic")
    open_clip = _require("open_clip")
    architecture, tag = _split_open_clip(name)
    image_size = open_clip.get_model_config(architecture)["vision_cfg"]["image_size"]
    config = open_clip.get_pretrained_cfg(architecture, tag) if tag else {}
    mean = config.get("mean") or open_clip.OPENAI_DATASET_MEAN
    std = config.get("std") or open_clip.OPENAI_DATASET_STD
    side = image_size if isinstance(image_size, int) else image_size[-1]
    return Preprocessing(int(side), tuple(mean), tuple(std), config.get("interpolation") or "bicubic")


def _network(name: str) -> nn.Module:
    """The architecture with random weights, classifier removed, mapping images to features."""
    if name.startswith(TIMM):
        return _require("timm").create_model(name[len(TIMM):], pretrained=False, num_classes=0)
    architecture, _ = _split_open_clip(name)
    return _require("open_clip").create_model(architecture, pretrained=None).visual


def _output_dim(network: nn.Module, side: int) -> int:
    """What the network puts out: timm's pooled (pre-logits) width, open_clip's embedding width."""
    for attribute in ("head_hidden_size", "num_features", "output_dim"):
        if isinstance(getattr(network, attribute, None), int):
            return getattr(network, attribute)
    with torch.no_grad():  # an architecture that does not say: ask it
        return int(network.eval()(torch.zeros(1, 3, side, side)).shape[-1])


class FoundationBackbone(nn.Module):
    """A timm / open_clip image tower as a backbone: pixels in [0, 1] of any side and 1 or 3
    channels in, the model's own features out (``output_dim``), its preprocessing applied inside."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.preprocessing = preprocessing(name)
        self.network = _network(name)
        self.output_dim = _output_dim(self.network, self.preprocessing.input_size)
        self.register_buffer("mean", torch.tensor(self.preprocessing.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(self.preprocessing.std).view(1, 3, 1, 1), persistent=False)

    def prepare_input(self, pixels: Tensor) -> Tensor:
        """What the network itself sees: resized, three channels, normalised."""
        side = self.preprocessing.input_size
        if pixels.shape[-2:] != (side, side):
            mode = "bicubic" if self.preprocessing.interpolation == "bicubic" else "bilinear"
            pixels = F.interpolate(pixels, size=(side, side), mode=mode, align_corners=False,
                                   antialias=pixels.shape[-1] > side).clamp(0, 1)
        if pixels.shape[1] == 1:
            pixels = pixels.expand(-1, 3, -1, -1)
        return (pixels - self.mean) / self.std

    def forward(self, pixels: Tensor) -> Tensor:
        return self.network(self.prepare_input(pixels))


def hub_weights(name: str) -> HubWeights:
    """The hub repository and file names of ``name``'s weights (what its library downloads)."""
    if name.startswith(TIMM):
        config = _require("timm").get_pretrained_cfg(name[len(TIMM):])
        if config is None or not config.hf_hub_id:
            raise ValueError(f"pretext.backbone = {name}: timm keeps no hub weights for it; pass a weights file")
        return HubWeights(config.hf_hub_id, (config.hf_hub_filename,) if config.hf_hub_filename else TIMM_FILES)
    architecture, tag = _split_open_clip(name)
    if tag is None:
        raise ValueError(f"pretext.backbone = {name}: name the weights (open_clip/{architecture}:<tag>) or pass a "
                         f"weights file")
    config = _require("open_clip").get_pretrained_cfg(architecture, tag)
    if not config.get("hf_hub"):
        raise ValueError(f"pretext.backbone = {name}: open_clip fetches these weights from {config.get('url')}, not "
                         f"the Hugging Face hub; download that file and pass it as the weights file")
    parts = config["hf_hub"].strip("/").split("/")  # <org>/<repository>[/<file>]
    repo_id, filename = "/".join(parts[:2]), "/".join(parts[2:])
    return HubWeights(repo_id, (filename,) if filename else OPEN_CLIP_FILES)


def hub_cache_dir() -> Path:
    """``huggingface_hub``'s cache (``HF_HUB_CACHE``, else ``$HF_HOME/hub``)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def cached_weights_file(weights: HubWeights) -> Path | None:
    """The weights file already in the hub cache, or None."""
    from huggingface_hub import try_to_load_from_cache

    for filename in weights.filenames:
        found = try_to_load_from_cache(weights.repo_id, filename, cache_dir=hub_cache_dir())
        if isinstance(found, str):
            return Path(found)
    return None


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _unreachable_reason() -> str | None:
    """Why the hub cannot be reached now (``HF_HUB_OFFLINE``, no route), or None."""
    if _offline():
        return "HF_HUB_OFFLINE is set"
    reason = unreachable_reason(HUB_URL)
    return None if reason is None else f"{HUB_URL} cannot be reached: {reason}"


def missing_weights_message(name: str, weights: HubWeights, reason: str) -> str:
    """One line: the file expected, where, and how to fetch it."""
    folder = hub_cache_dir() / f"models--{weights.repo_id.replace('/', '--')}" / "snapshots" / "<revision>"
    return (f"pretext.backbone = {name}: its weights are not in the Hugging Face cache and {reason}; expected "
            f"{folder / weights.filenames[0]}: fetch it where there is network with `hf download {weights.repo_id} "
            f"{weights.filenames[0]}` and copy {hub_cache_dir()} here, or pass the weights as a state dict "
            f"(scan cluster --weights FILE)")


def check_hub_weights(name: str) -> None:
    """A ``FileNotFoundError`` in one line when ``name``'s weights are neither in the hub cache
    nor downloadable now: the check an entry point makes before any other work."""
    weights = hub_weights(name)
    if cached_weights_file(weights) is None and (reason := _unreachable_reason()) is not None:
        raise FileNotFoundError(missing_weights_message(name, weights, reason))


def locate_hub_weights(name: str) -> Path:
    """The cached weights file of ``name``, downloaded into the cache first where the hub can
    be reached (else ``check_hub_weights``'s error)."""
    weights = hub_weights(name)
    found = cached_weights_file(weights)
    if found is not None:
        return found
    check_hub_weights(name)
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(weights.repo_id, weights.filenames[0], cache_dir=hub_cache_dir()))


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """A state dict from ``.safetensors`` or a torch file (loaded with ``weights_only``), unwrapped
    from ``{"state_dict": ...}`` / ``{"model": ...}``."""
    if not path.is_file():
        raise FileNotFoundError(f"pretext.weights = {path.as_posix()}: no such file; put the weights file there")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = load_checkpoint(path)
    for wrapper in ("state_dict", "model"):
        if isinstance(state.get(wrapper), dict):
            return state[wrapper]
    return state


def network_state(name: str, state: dict[str, Tensor], network: nn.Module) -> dict[str, Tensor]:
    """The entries of ``state`` that belong to ``network``: an open_clip file's image tower
    (``visual.*``, the text tower dropped), a timm file without its classifier."""
    if name.startswith(OPEN_CLIP) and any(key.startswith("visual.") for key in state):
        state = {key[len("visual."):]: value for key, value in state.items() if key.startswith("visual.")}
    expected = network.state_dict()
    return {key: value for key, value in state.items() if key in expected or not _is_classifier(key)}


def _is_classifier(key: str) -> bool:
    return key.split(".")[0] in ("head", "fc", "classifier", "head_dist")


def load_foundation(name: str, weights_file: Path | None = None) -> FoundationBackbone:
    """``name`` with its trained weights: from ``weights_file`` when given, else from the hub
    cache (``locate_hub_weights``). Every network tensor must be found with its shape
    (``scan_core.pretrained.load_backbone_state`` names the keys that do not fit)."""
    backbone = FoundationBackbone(name)
    path = weights_file if weights_file is not None else locate_hub_weights(name)
    load_backbone_state(backbone.network, network_state(name, read_state_dict(path), backbone.network),
                        f"{path} for {name}")
    return backbone
