"""The pipeline's parameters (``params.yaml``): one typed group per stage, checked up front.

A mistyped key, a wrong type or an out-of-range value is reported as one line naming the
key, the value and what is valid, before any stage does work.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from scan_core.names import BACKBONES, DATASET_NAMES, PRETEXT_METHODS, WEIGHTS_DIR, is_weights_file


Auto = Literal["auto"]


def auto_or_int(lowest: int, highest: int | None = None) -> Any:
    """A type for keys that take a whole number or ``auto`` (see ``scan_core.defaults``)."""
    return Union[Auto, Annotated[int, Field(ge=lowest, le=highest)]]


class ParamsError(ValueError):
    """params.yaml is invalid; the message names the key, the value and what is valid."""


class Group(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)


class DataParams(Group):
    name: Literal[DATASET_NAMES] = "digits"  # type: ignore[valid-type]
    root: str = "data"
    image_size: auto_or_int(4, 1024) = "auto"  # type: ignore[valid-type]
    train_split: str = "auto"
    eval_split: str = "auto"
    subset_file: str | None = None
    on_bad_image: Literal["fail", "skip"] = "fail"
    download: bool = False


class AugmentParams(Group):
    hflip: bool = True
    crop_min_scale: float = Field(0.2, gt=0, le=1)
    jitter_strength: float = Field(0.4, ge=0, le=1)
    rotation: float = Field(0.0, ge=0, le=180)
    strong_ops: int = Field(4, ge=0, le=14)
    cutout_fraction: float = Field(0.5, ge=0, le=1)


class PretextParams(Group):
    method: Literal[PRETEXT_METHODS] = "simclr"  # type: ignore[valid-type]
    weights: str | None = None
    backbone: Literal[BACKBONES] = "resnet18_cifar"  # type: ignore[valid-type]
    epochs: auto_or_int(1) = "auto"  # type: ignore[valid-type]
    batch_size: auto_or_int(2) = "auto"  # type: ignore[valid-type]
    lr: float = Field(0.4, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    temperature: float = Field(0.1, gt=0)
    projection_dim: int = Field(128, ge=2)
    seed: int = Field(0, ge=0)

    @field_validator("weights")
    @classmethod
    def _local_weights_in_weights_dir(cls, weights: str | None) -> str | None:
        """A local file must lie in the folder dvc.yaml lists as pretext's dependency."""
        if weights is not None and is_weights_file(weights):
            parts = Path(weights).parts
            if len(parts) < 2 or parts[0] != WEIGHTS_DIR or ".." in parts:
                raise ValueError(f"a local weights file must lie in the project's {WEIGHTS_DIR}/ folder (a "
                                 f"dependency of pretext in dvc.yaml): copy it there and write {WEIGHTS_DIR}/<file>")
        return weights


class EmbedParams(Group):
    batch_size: int = Field(512, ge=1)


class MineParams(Group):
    topk: int = Field(20, ge=1)
    space: Literal["backbone", "projection"] = "backbone"
    approximate_above: int = Field(200_000, ge=0)  # anchors; exact search at or below, IVF-Flat above
    nprobe: int = Field(64, ge=1)  # IVF lists searched per query (more: higher recall, slower)
    recall_sample: int = Field(1000, ge=1)  # anchors the IVF recall@k is measured on against exact search


class ScanParams(Group):
    num_neighbors: int = Field(20, ge=0)
    entropy_weight: float = Field(5.0, ge=0)
    num_clusters: auto_or_int(2) = 10  # type: ignore[valid-type]
    num_heads: int = Field(1, ge=1)
    epochs: auto_or_int(1) = "auto"  # type: ignore[valid-type]
    batch_size: auto_or_int(2) = "auto"  # type: ignore[valid-type]
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    update_backbone: bool = True
    init: Literal["kmeans", "random"] = "kmeans"
    augmentation: Literal["strong", "simclr"] = "strong"
    seed: int = Field(0, ge=0)


class SelflabelParams(Group):
    threshold: float = Field(0.99, gt=0, lt=1)
    class_balance: bool = True
    epochs: auto_or_int(0) = "auto"  # type: ignore[valid-type]
    batch_size: auto_or_int(1) = "auto"  # type: ignore[valid-type]
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    ema: float = Field(0.0, ge=0, lt=1)
    patience: int = Field(10, ge=1)
    seed: int = Field(0, ge=0)


class EvaluateParams(Group):
    kmeans_seed: int = Field(0, ge=0)
    prototypes: int = Field(8, ge=0)


class Params(Group):
    data: DataParams = DataParams()
    augment: AugmentParams = AugmentParams()
    pretext: PretextParams = PretextParams()
    embed: EmbedParams = EmbedParams()
    mine: MineParams = MineParams()
    scan: ScanParams = ScanParams()
    selflabel: SelflabelParams = SelflabelParams()
    evaluate: EvaluateParams = EvaluateParams()

    @model_validator(mode="after")
    def _neighbors_were_mined(self) -> "Params":
        if self.scan.num_neighbors > self.mine.topk:
            raise ValueError(
                f"scan.num_neighbors = {self.scan.num_neighbors} is larger than mine.topk = "
                f"{self.mine.topk}; valid: at most mine.topk (or raise mine.topk)"
            )
        return self

    @model_validator(mode="after")
    def _pretrained_has_no_projection(self) -> "Params":
        if self.pretext.method == "pretrained" and self.mine.space == "projection":
            raise ValueError("mine.space = 'projection' is invalid with pretext.method = 'pretrained' (a pretrained "
                             "backbone has no projection head); use mine.space: backbone")
        return self


def known_keys(model: type[BaseModel] = Params, prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys += known_keys(annotation, f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


UNION_TAGS = ("literal[", "constrained-int", "int")


def _key(error: dict[str, Any]) -> str:
    """The params key of an error, without pydantic's union-branch tags."""
    return ".".join(str(part) for part in error["loc"] if not str(part).startswith(UNION_TAGS))


def _describe(error: dict[str, Any], raw: dict[str, Any]) -> str:
    key = _key(error)
    if any(str(part).startswith(UNION_TAGS) for part in error["loc"]):
        return f"{key} = {error.get('input')!r} is invalid: use 'auto' or a whole number ({error['msg'].lower()})"
    if error["type"] == "extra_forbidden":
        group, _, name = key.rpartition(".")
        # A mistyped group is compared with group names, a mistyped key with its group's keys.
        candidates = [known.rpartition(".")[2] for known in known_keys() if known.rpartition(".")[0] == group] \
            if group else list(Params.model_fields)
        guesses = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
        prefix = f"{group}." if group else ""
        hint = f"did you mean {prefix}{guesses[0]}?" if guesses else \
            "valid: " + ", ".join(prefix + candidate for candidate in candidates)
        return f"unknown key {key}; {hint}"
    if not error["loc"]:
        return str(error["msg"]).removeprefix("Value error, ")
    return f"{key} = {error.get('input')!r} is invalid: {error['msg'].removeprefix('Value error, ')}"


def validate_params(raw: dict[str, Any], source: str = "params.yaml") -> Params:
    """Turn the raw mapping into ``Params`` or raise ``ParamsError`` listing every problem."""
    try:
        return Params.model_validate(raw or {})
    except ValidationError as error:
        # An auto-or-number key fails both branches; the number branch says what is wrong.
        items = [item for item in error.errors() if not (item["loc"] and str(item["loc"][-1]).startswith("literal["))]
        problems = [_describe(item, raw) for item in items]
        raise ParamsError(f"{source}: " + "; ".join(problems)) from None


def load_params(path: Path | str = "params.yaml") -> Params:
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path} not found; run from the project root or pass the file's path")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ParamsError(f"{path} is not valid YAML: {error}") from None
    return validate_params(raw, str(path))


def check_against_data(params: Params, num_train_images: int) -> None:
    """The limits that depend on the data set's size, checked once its size is known."""
    problems = []
    if params.mine.topk >= num_train_images:
        problems.append(f"mine.topk = {params.mine.topk} is invalid: it must be below the number of "
                        f"training images ({num_train_images})")
    if params.scan.num_clusters != "auto" and params.scan.num_clusters > num_train_images:
        problems.append(f"scan.num_clusters = {params.scan.num_clusters} is invalid: there are only "
                        f"{num_train_images} training images")
    if problems:
        raise ParamsError("params.yaml: " + "; ".join(problems))
