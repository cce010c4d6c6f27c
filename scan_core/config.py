"""The pipeline's parameters (``params.yaml``): one typed group per stage, checked up front.

A mistyped key, a wrong type or an out-of-range value is reported as one line naming the
key, the value and what is valid, before any stage does work.

Every key's default is the value params.yaml holds (tests check it), taken from
``scan_core.defaults.PARAM_DEFAULTS``, the table the library's settings dataclasses read
too; so deleting a line of params.yaml changes nothing. ``auto`` keys follow the images: the
recipe ``prepare`` chooses (``scan_core.recipes``) and the number of images
(``scan_core.defaults``). ``default_params_yaml`` writes a complete params.yaml for a new
project.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from scan_core.defaults import PARAM_DEFAULTS
from scan_core.names import (BACKBONES, DATASET_NAMES, FOUNDATION_PREFIXES, HEAD_KINDS, PRETEXT_METHODS,
                             WEIGHTS_DIR, is_foundation, is_weights_file)
from scan_core.recipes import AUTO, RECIPE_NAMES


Auto = Literal["auto"]
# Defaults: the one table every default comes from (``scan_core.defaults.PARAM_DEFAULTS``),
# which params.yaml spells out; tests check that the two agree.
DEFAULTS = PARAM_DEFAULTS


def auto_or(kind: type, **limits: Any) -> Any:
    """A type for keys that take ``auto`` or a value of ``kind`` within ``limits`` (pydantic's
    ``ge``, ``le``, ...): ``auto`` follows the images (``scan_core.defaults``, ``scan_core.recipes``)."""
    return Union[Auto, Annotated[kind, Field(**limits)]]


def auto_or_int(lowest: int, highest: int | None = None) -> Any:
    """A type for keys that take a whole number or ``auto`` (see ``scan_core.defaults``)."""
    return auto_or(int, ge=lowest, le=highest)


class ParamsError(ValueError):
    """params.yaml is invalid; the message names the key, the value and what is valid."""


class Group(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)


class DataParams(Group):
    name: Literal[DATASET_NAMES] = DEFAULTS["data"]["name"]  # type: ignore[valid-type]
    root: str = DEFAULTS["data"]["root"]
    # auto: the rule of scan_core.recipes (channels and native side); or force a recipe.
    recipe: Literal[(AUTO, *RECIPE_NAMES)] = DEFAULTS["data"]["recipe"]  # type: ignore[valid-type]
    image_size: auto_or_int(4, 1024) = DEFAULTS["data"]["image_size"]  # type: ignore[valid-type]
    train_split: str = DEFAULTS["data"]["train_split"]
    eval_split: str = DEFAULTS["data"]["eval_split"]
    subset_file: str | None = DEFAULTS["data"]["subset_file"]
    on_bad_image: Literal["fail", "skip"] = DEFAULTS["data"]["on_bad_image"]
    download: bool = DEFAULTS["data"]["download"]


class AugmentParams(Group):
    # auto: the recipe's value (scan_core.recipes), from the recipe prepare recorded.
    hflip: auto_or(bool) = DEFAULTS["augment"]["hflip"]  # type: ignore[valid-type]
    crop_min_scale: auto_or(float, gt=0, le=1) = DEFAULTS["augment"]["crop_min_scale"]  # type: ignore[valid-type]
    jitter_strength: auto_or(float, ge=0, le=1) = DEFAULTS["augment"]["jitter_strength"]  # type: ignore[valid-type]
    rotation: auto_or(float, ge=0, le=180) = DEFAULTS["augment"]["rotation"]  # type: ignore[valid-type]
    strong_ops: int = Field(DEFAULTS["augment"]["strong_ops"], ge=0, le=14)
    cutout_fraction: float = Field(DEFAULTS["augment"]["cutout_fraction"], ge=0, le=1)


class PretextParams(Group):
    method: Literal[PRETEXT_METHODS] = DEFAULTS["pretext"]["method"]  # type: ignore[valid-type]
    weights: str | None = DEFAULTS["pretext"]["weights"]
    # one of BACKBONES, or a foundation model: timm/<model>[.<tag>], open_clip/<architecture>:<tag>
    backbone: str = DEFAULTS["pretext"]["backbone"]
    epochs: auto_or_int(1) = DEFAULTS["pretext"]["epochs"]  # type: ignore[valid-type]
    batch_size: auto_or_int(2) = DEFAULTS["pretext"]["batch_size"]  # type: ignore[valid-type]
    lr: float = Field(DEFAULTS["pretext"]["lr"], gt=0)
    weight_decay: float = Field(DEFAULTS["pretext"]["weight_decay"], ge=0)
    temperature: float = Field(DEFAULTS["pretext"]["temperature"], gt=0)
    projection_dim: int = Field(DEFAULTS["pretext"]["projection_dim"], ge=2)
    seed: int = Field(DEFAULTS["pretext"]["seed"], ge=0)

    @field_validator("backbone")
    @classmethod
    def _known_backbone(cls, backbone: str) -> str:
        """The model name itself is checked by the pretext stage (timm and open_clip import slowly)."""
        if backbone != AUTO and backbone not in BACKBONES and not (
                is_foundation(backbone) and len(backbone) > len(backbone.split("/")[0]) + 1):
            raise ValueError(f"unknown backbone {backbone!r}; valid: {AUTO}, {', '.join(BACKBONES)}, or a foundation "
                             f"model {FOUNDATION_PREFIXES[0]}<model> / {FOUNDATION_PREFIXES[1]}<architecture>:<tag>")
        return backbone

    @model_validator(mode="after")
    def _foundation_models_are_pretrained(self) -> "PretextParams":
        if is_foundation(self.backbone) and self.method != "pretrained":
            raise ValueError(f"pretext.backbone = {self.backbone} is a foundation model, used frozen with its own "
                             f"weights: set pretext.method: pretrained (scan cluster --backbone does)")
        return self

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
    batch_size: int = Field(DEFAULTS["embed"]["batch_size"], ge=1)


class MineParams(Group):
    topk: int = Field(DEFAULTS["mine"]["topk"], ge=1)
    space: Literal["backbone", "projection"] = DEFAULTS["mine"]["space"]
    # anchors: exact search at or below, IVF-Flat above
    approximate_above: int = Field(DEFAULTS["mine"]["approximate_above"], ge=0)
    nprobe: int = Field(DEFAULTS["mine"]["nprobe"], ge=1)  # IVF lists searched per query (more: higher recall, slower)
    # anchors the IVF recall@k is measured on against exact search
    recall_sample: int = Field(DEFAULTS["mine"]["recall_sample"], ge=1)


class ScanParams(Group):
    num_neighbors: int = Field(DEFAULTS["scan"]["num_neighbors"], ge=0)
    # auto: one weight per head, from 5 down to 0.5 (scan_core.defaults.entropy_weight_ladder)
    entropy_weight: auto_or(float, ge=0) = DEFAULTS["scan"]["entropy_weight"]  # type: ignore[valid-type]
    num_clusters: auto_or_int(2) = DEFAULTS["scan"]["num_clusters"]  # type: ignore[valid-type]
    num_heads: int = Field(DEFAULTS["scan"]["num_heads"], ge=1)
    # linear (SCAN's) or mlp: two layers, 512 wide (TEMI's, for frozen foundation features)
    head: Literal[HEAD_KINDS] = DEFAULTS["scan"]["head"]  # type: ignore[valid-type]
    epochs: auto_or_int(1) = DEFAULTS["scan"]["epochs"]  # type: ignore[valid-type]
    batch_size: auto_or_int(2) = DEFAULTS["scan"]["batch_size"]  # type: ignore[valid-type]
    lr: auto_or(float, gt=0) = DEFAULTS["scan"]["lr"]  # type: ignore[valid-type]
    weight_decay: float = Field(DEFAULTS["scan"]["weight_decay"], ge=0)
    update_backbone: auto_or(bool) = DEFAULTS["scan"]["update_backbone"]  # type: ignore[valid-type]
    # none: the heads of a frozen backbone train on its features of the plain images, computed once
    augmentation: Literal["auto", "strong", "simclr", "none"] = DEFAULTS["scan"]["augmentation"]
    # kmeans: heads from k-means partitions; spectral: from spectral clusterings of the mined graph
    # (may be unequal); random: the paper's start
    init: Literal["kmeans", "spectral", "random"] = DEFAULTS["scan"]["init"]
    # how the head and epoch are kept: scan_loss (the authors'), or modularity on the mined neighbor graph
    selection: Literal["scan_loss", "modularity"] = DEFAULTS["scan"]["selection"]
    # equal (the paper's entropy term), start (the sizes of the heads' starting partitions), or the sizes the
    # clusters should take, one per cluster, any scale and order
    cluster_sizes: Union[Literal["equal", "start"], list[Annotated[float, Field(gt=0)]]] = \
        DEFAULTS["scan"]["cluster_sizes"]
    seed: int = Field(DEFAULTS["scan"]["seed"], ge=0)

    @model_validator(mode="after")
    def _spectral_start_needs_neighbors(self) -> "ScanParams":
        if self.init == "spectral" and self.num_neighbors == 0:
            raise ValueError("scan.init: spectral clusters the graph of each image's scan.num_neighbors nearest "
                             "neighbors, so it needs scan.num_neighbors of at least 1 (it is 0)")
        return self

    @model_validator(mode="after")
    def _start_sizes_need_a_start(self) -> "ScanParams":
        if self.cluster_sizes == "start" and self.init == "random":
            raise ValueError("scan.cluster_sizes: start asks for the sizes of the heads' starting partitions, and "
                             "scan.init: random has none; use scan.init kmeans or spectral")
        return self

    @model_validator(mode="after")
    def _one_size_per_cluster(self) -> "ScanParams":
        if isinstance(self.cluster_sizes, list):
            if self.num_clusters == AUTO:
                raise ValueError("scan.cluster_sizes gives sizes, so it needs scan.num_clusters as a number, not auto")
            if len(self.cluster_sizes) != self.num_clusters:
                raise ValueError(f"scan.cluster_sizes gives {len(self.cluster_sizes)} sizes for scan.num_clusters = "
                                 f"{self.num_clusters}; valid: one size per cluster, or equal")
        return self


class SelflabelParams(Group):
    threshold: float = Field(DEFAULTS["selflabel"]["threshold"], gt=0, lt=1)
    class_balance: bool = DEFAULTS["selflabel"]["class_balance"]
    epochs: auto_or_int(0) = DEFAULTS["selflabel"]["epochs"]  # type: ignore[valid-type]
    batch_size: auto_or_int(1) = DEFAULTS["selflabel"]["batch_size"]  # type: ignore[valid-type]
    lr: float = Field(DEFAULTS["selflabel"]["lr"], gt=0)
    weight_decay: float = Field(DEFAULTS["selflabel"]["weight_decay"], ge=0)
    ema: float = Field(DEFAULTS["selflabel"]["ema"], ge=0, lt=1)
    patience: int = Field(DEFAULTS["selflabel"]["patience"], ge=1)
    # share of an image's mined neighbors that must share its cluster for it to be a pseudo-label (0: off)
    neighbor_consensus: float = Field(DEFAULTS["selflabel"]["neighbor_consensus"], ge=0, le=1)
    # online: pseudo-labels from the model being trained (the paper) | fixed: from the scan model, computed once
    teacher: Literal["online", "fixed"] = DEFAULTS["selflabel"]["teacher"]
    seed: int = Field(DEFAULTS["selflabel"]["seed"], ge=0)


class EvaluateParams(Group):
    kmeans_seed: int = Field(DEFAULTS["evaluate"]["kmeans_seed"], ge=0)
    prototypes: int = Field(DEFAULTS["evaluate"]["prototypes"], ge=0)


class Params(Group):
    data: DataParams = DataParams()
    augment: AugmentParams = AugmentParams()
    pretext: PretextParams = PretextParams()
    embed: EmbedParams = EmbedParams()
    mine: MineParams = MineParams()
    scan: ScanParams = ScanParams()
    selflabel: SelflabelParams = SelflabelParams()
    evaluate: EvaluateParams = EvaluateParams()

    @model_validator(mode="before")
    @classmethod
    def _empty_group_is_its_defaults(cls, raw: Any) -> Any:
        """A group header with no keys left under it (YAML null) takes every default."""
        if isinstance(raw, dict):
            return {name: {} if value is None and name in cls.model_fields else value for name, value in raw.items()}
        return raw

    @model_validator(mode="after")
    def _neighbors_were_mined(self) -> "Params":
        if self.scan.num_neighbors > self.mine.topk:
            raise ValueError(
                f"scan.num_neighbors = {self.scan.num_neighbors} is larger than mine.topk = "
                f"{self.mine.topk}; valid: at most mine.topk (or raise mine.topk)"
            )
        return self

    @model_validator(mode="after")
    def _cached_features_need_a_frozen_backbone(self) -> "Params":
        if self.scan.augmentation == "none" and self.scan.update_backbone is True:
            raise ValueError("scan.augmentation = 'none' (heads trained on cached features) needs "
                             "scan.update_backbone: false; set it, or use augmentation strong or simclr")
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


# pydantic tags an auto-or-value key's errors with the branch that failed; what each asks for.
UNION_BRANCHES = {"constrained-int": "'auto' or a whole number", "int": "'auto' or a whole number",
                  "constrained-float": "'auto' or a number", "float": "'auto' or a number",
                  "bool": "'auto', true or false"}


def _is_branch(part: object) -> bool:
    return str(part).startswith("literal[") or str(part) in UNION_BRANCHES


def _key(error: dict[str, Any]) -> str:
    """The params key of an error, without pydantic's union-branch tags."""
    return ".".join(str(part) for part in error["loc"] if not _is_branch(part))


def _unknown_key(key: str) -> str:
    """``unknown key <key>`` with the closest known key, or the valid ones."""
    group, _, name = key.rpartition(".")
    # A mistyped group is compared with group names, a mistyped key with its group's keys.
    candidates = [known.rpartition(".")[2] for known in known_keys() if known.rpartition(".")[0] == group] \
        if group else list(Params.model_fields)
    guesses = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    prefix = f"{group}." if group else ""
    hint = f"did you mean {prefix}{guesses[0]}?" if guesses else \
        "valid: " + ", ".join(prefix + candidate for candidate in candidates)
    return f"unknown key {key}; {hint}"


def _describe(error: dict[str, Any], raw: dict[str, Any]) -> str:
    key = _key(error)
    branch = next((str(part) for part in error["loc"] if str(part) in UNION_BRANCHES), None)
    if branch is not None:
        return (f"{key} = {error.get('input')!r} is invalid: use {UNION_BRANCHES[branch]} "
                f"({error['msg'].lower()})")
    if error["type"] == "extra_forbidden":
        return _unknown_key(key)
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


PARAMS_YAML_HEADER = ("# SCAN pipeline parameters, grouped by stage: every key at its default (scan_core/config.py)\n"
                      "# unless set when this file was written. auto follows the images (scan_core/recipes.py,\n"
                      "# scan_core/defaults.py); the values in force are logged by each stage.\n")


def default_params_yaml(overrides: dict[str, object] | None = None) -> str:
    """A complete ``params.yaml``: every group and key of the schema at its default, with the
    flat ``{"group.key": value}`` ``overrides`` applied and validated (an unknown key or a bad
    value raises ``ParamsError`` naming it). Same input, same text; ``load_params`` of it gives
    ``Params`` with those overrides."""
    known = set(known_keys())
    unknown = [key for key in overrides or {} if key not in known]
    if unknown:
        raise ParamsError("the overrides given: " + "; ".join(_unknown_key(key) for key in unknown))
    nested = Params().model_dump()
    for key, value in (overrides or {}).items():
        group, name = key.split(".")
        nested[group][name] = value
    params = validate_params(nested, "the overrides given")
    body = yaml.safe_dump(params.model_dump(), sort_keys=False, default_flow_style=False, allow_unicode=True,
                          width=4096)
    return PARAMS_YAML_HEADER + body
