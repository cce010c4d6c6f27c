"""What each stage reads, writes, and which params and code it depends on.

This table is the single source for the Prefect cache keys; ``dvc.yaml`` states the same
facts for DVC and a test keeps the two in agreement.
"""

from __future__ import annotations

from dataclasses import dataclass

from scan_core.config import Params

TRAINING_CODE = ("scan_core/augment.py", "scan_core/models.py", "scan_core/checkpoint.py",
                 "scan_core/training/common.py")
AUTO_SETTINGS_CODE = ("scan_core/defaults.py", "tasks/progress.py")


@dataclass(frozen=True)
class StageSpec:
    name: str
    params: tuple[str, ...]
    code: tuple[str, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


STAGES: dict[str, StageSpec] = {
    spec.name: spec
    for spec in (
        StageSpec(
            "prepare",
            params=("data.name", "data.root", "data.image_size", "data.train_split", "data.eval_split",
                    "data.subset_file", "data.on_bad_image"),
            code=("tasks/prepare.py", "scan_core/data", "scan_core/defaults.py"),
            inputs=(),
            outputs=("artifacts/prepare",),
        ),
        StageSpec(
            "pretext",
            params=("pretext", "augment.hflip", "augment.crop_min_scale", "augment.jitter_strength",
                    "augment.rotation"),
            code=("tasks/pretext.py", "scan_core/training/pretext.py", "scan_core/losses.py", *TRAINING_CODE,
                  *AUTO_SETTINGS_CODE),
            inputs=("prepare",),
            outputs=("artifacts/pretext",),
        ),
        StageSpec(
            "embed",
            params=("embed",),
            code=("tasks/embed.py", *TRAINING_CODE),
            inputs=("prepare", "pretext"),
            outputs=("artifacts/embed",),
        ),
        StageSpec(
            "mine",
            params=("mine",),
            code=("tasks/mine.py", "scan_core/mining.py"),
            inputs=("prepare", "embed"),
            outputs=("artifacts/mine", "metrics/mine.json"),
        ),
        StageSpec(
            "scan",
            params=("scan", "augment.hflip", "augment.strong_ops", "augment.cutout_fraction",
                    "augment.crop_min_scale", "augment.jitter_strength", "augment.rotation"),
            code=("tasks/scan.py", "scan_core/training/clustering.py", "scan_core/training/warm_start.py",
                  "scan_core/cluster_count.py", "scan_core/losses.py", "scan_core/health.py",
                  *TRAINING_CODE, *AUTO_SETTINGS_CODE),
            inputs=("prepare", "pretext", "embed", "mine"),
            outputs=("artifacts/scan",),
        ),
        StageSpec(
            "selflabel",
            params=("selflabel", "augment.hflip", "augment.strong_ops", "augment.cutout_fraction"),
            code=("tasks/selflabel.py", "scan_core/training/selflabel.py", "scan_core/losses.py", *TRAINING_CODE,
                  *AUTO_SETTINGS_CODE),
            inputs=("prepare", "scan"),
            outputs=("artifacts/selflabel",),
        ),
        StageSpec(
            "evaluate",
            params=("evaluate",),
            code=("tasks/evaluate.py", "scan_core/evaluation.py", "scan_core/report.py", "scan_core/health.py"),
            inputs=("prepare", "embed", "mine", "scan", "selflabel"),
            outputs=("metrics/evaluate.json", "plots", "reports"),
        ),
    )
}


def stage_params(params: Params, stage: str) -> dict[str, object]:
    """The flat ``{"group.key": value}`` params one stage depends on (a group means all its keys)."""
    flat = {
        f"{group}.{key}": value
        for group, values in params.model_dump().items()
        for key, value in values.items()
    }
    selected: dict[str, object] = {}
    for wanted in STAGES[stage].params:
        selected.update({key: value for key, value in flat.items() if key == wanted or key.startswith(wanted + ".")})
    return selected


def group(subset: dict[str, object], name: str) -> dict[str, object]:
    """The keys of one params group, without the group prefix: ``{"epochs": 50, ...}``."""
    return {key.split(".", 1)[1]: value for key, value in subset.items() if key.startswith(name + ".")}
