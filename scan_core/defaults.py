"""Default values: what every params.yaml key is when left out, and what ``auto`` becomes.

``PARAM_DEFAULTS`` is the one source of the keys' defaults: the params schema
(``scan_core.config``) takes its defaults from it, ``params.yaml`` spells the same values
out (tests check that they agree), and the library's settings dataclasses (``PretextSettings``,
``ScanSettings``, ``SelflabelSettings``, ``AugmentSettings``) take theirs from it too. It is
plain Python so that the training stack imports without the schema's pydantic (a bare GPU
machine has only torch's stack).

A user who names only their folder should get a sensible run, so the keys left ``auto`` are
derived from the data: its channels, native image side and number of images. The recipe
(``scan_core.recipes``, chosen by ``prepare`` and recorded in ``dataset.json``) sets the
augmentations, the working resolution, the backbone and the epoch budgets; batch sizes and
cluster counts follow the number of images. Each rule is a plain function of those numbers,
so the same data gives the same settings on every machine (and the same cache keys); each
is overridable in params.yaml.
"""

from __future__ import annotations

import math
from typing import Any

from scan_core.recipes import AUTO, DEFAULT_RECIPE, RECIPES, SCAN_KEYS, RecipeChoice

# The default of every params.yaml key, group by group in params.yaml's order. The values are
# those every measured result used; ``auto`` keys follow the images (see above).
PARAM_DEFAULTS: dict[str, dict[str, Any]] = {
    "data": {"name": "digits", "root": "data", "recipe": AUTO, "image_size": AUTO, "train_split": AUTO,
             "eval_split": AUTO, "subset_file": None, "on_bad_image": "fail", "download": False},
    "augment": {"hflip": AUTO, "crop_min_scale": AUTO, "jitter_strength": AUTO, "rotation": AUTO, "strong_ops": 2,
                "cutout_fraction": 0.25},
    "pretext": {"method": "simclr", "weights": None, "backbone": AUTO, "epochs": AUTO, "batch_size": AUTO, "lr": 0.4,
                "weight_decay": 1e-4, "temperature": 0.5, "projection_dim": 128, "seed": 0},
    "embed": {"batch_size": 512},
    "mine": {"topk": 20, "space": "backbone", "approximate_above": 200_000, "nprobe": 64, "recall_sample": 1000},
    "scan": {"num_neighbors": 5, "entropy_weight": 5.0, "num_clusters": 10, "num_heads": 10, "head": "linear",
             "epochs": AUTO,
             "batch_size": AUTO, "lr": AUTO, "weight_decay": 1e-4, "update_backbone": AUTO, "augmentation": AUTO,
             "init": "kmeans", "selection": "scan_loss", "cluster_sizes": "equal", "seed": 0},
    "selflabel": {"threshold": 0.99, "class_balance": True, "epochs": AUTO, "batch_size": AUTO, "lr": 1e-4,
                  "weight_decay": 1e-4, "ema": 0.0, "patience": 10, "neighbor_consensus": 0.0, "teacher": "online",
                  "seed": 0},
    "evaluate": {"kmeans_seed": 0, "prototypes": 8},
}

MAX_AUTO_IMAGE_SIZE = max(recipe.max_image_size for recipe in RECIPES.values())
# scan.num_clusters auto: counts tried, 2 up to 50 and at most one cluster per 10 images.
MAX_AUTO_CLUSTERS = 50
IMAGES_PER_AUTO_CLUSTER = 10
# scan_heads: SCAN heads on a foundation backbone's cached features (TEMI's batch of 1024): a
# step costs next to nothing there, so larger batches mean fewer steps for the same epochs.
MAX_BATCH_SIZES = {"pretext": 256, "scan": 128, "selflabel": 256, "scan_heads": 1024}
MIN_BATCH_SIZE = 16


def entropy_weight_ladder(num_heads: int, highest: float = 5.0, lowest: float = 0.5) -> tuple[float, ...]:
    """``scan.entropy_weight: auto``: one weight per head, spread geometrically from ``highest``
    (the paper's 5: near-equal clusters) down to ``lowest`` (clusters free to follow unequal
    classes).

    The entropy term asks for equal cluster sizes whatever the data holds, and no single weight
    suits both a balanced set and one whose classes run from 50 to 1,000 images. With a weight
    per head, the label-free selection (modularity on the mined neighbor graph, see
    ``scan_core.training.clustering.selection_scores``) chooses the weight along with the head.
    """
    if num_heads == 1:
        return (highest,)
    ratio = (lowest / highest) ** (1 / (num_heads - 1))
    return tuple(round(highest * ratio**index, 4) for index in range(num_heads))


def auto_image_size(native_side: int, largest: int = MAX_AUTO_IMAGE_SIZE) -> int:
    """The images' own side, capped at ``largest`` px (64: the small_grayscale recipe's cap;
    ``scan_core.recipes.working_side`` gives each recipe's): larger photos cost far more on a
    CPU than the clustering gains from them (set ``data.image_size`` for full resolution on a GPU)."""
    return max(1, min(int(native_side), largest))


def auto_epochs(stage: str, num_images: int, recipe: str = DEFAULT_RECIPE) -> int:
    """Epochs that give every stage about the same number of optimiser steps at any size:
    the recipe's budget of images seen, divided by the number of images, within its range."""
    return RECIPES[recipe].epochs[stage].epochs(num_images)


def auto_batch_size(stage: str, num_images: int) -> int:
    """The stage's usual batch, halved until there are at least four batches per epoch."""
    largest = MAX_BATCH_SIZES[stage]
    fitting = 2 ** int(math.floor(math.log2(max(num_images // 4, 1))))
    return max(MIN_BATCH_SIZE, min(largest, fitting))


def auto_cluster_counts(num_images: int) -> range:
    """The cluster counts ``scan.num_clusters: auto`` chooses among."""
    return range(2, max(2, min(MAX_AUTO_CLUSTERS, num_images // IMAGES_PER_AUTO_CLUSTER)) + 1)


def resolve_stage(stage: str, values: dict[str, Any], num_images: int,
                  recipe: RecipeChoice | None = None) -> dict[str, Any]:
    """A training stage's params group with its ``auto`` keys made concrete: the keys the
    recipe sets (``epochs``, pretext's ``backbone``) from ``recipe`` as ``prepare`` recorded it
    (without one: the default recipe's rule for ``num_images``), ``batch_size`` from the count."""
    resolved = dict(values)
    for key, value in values.items():
        if value != AUTO:
            continue
        if recipe is not None and f"{stage}.{key}" in recipe.values:
            resolved[key] = recipe.values[f"{stage}.{key}"]
        elif key == "epochs":
            resolved[key] = auto_epochs(stage, num_images)
        elif key == "batch_size":
            resolved[key] = auto_batch_size(stage, num_images)
        elif key == "backbone":
            resolved[key] = RECIPES[DEFAULT_RECIPE].backbone
        elif stage == "scan" and key == "entropy_weight":
            resolved[key] = entropy_weight_ladder(int(values.get("num_heads", PARAM_DEFAULTS["scan"]["num_heads"])))
        elif stage == "scan" and key in SCAN_KEYS:
            resolved[key] = getattr(RECIPES[DEFAULT_RECIPE], f"scan_{key}")
    return resolved


def resolve_augment(values: dict[str, Any], recipe: RecipeChoice) -> dict[str, Any]:
    """The augment keys a stage reads, with ``auto`` replaced by the recipe's values."""
    return {key: recipe.values[f"augment.{key}"] if value == AUTO else value for key, value in values.items()}


def describe_auto(stage: str, values: dict[str, Any], resolved: dict[str, Any], recipe: RecipeChoice | None = None,
                  group: str | None = None) -> str:
    """One line naming the settings in force, marking those that ``auto`` chose: ``(auto:
    photo)`` where the recipe set them, ``(auto)`` where the image count did. ``group`` is the
    params group of ``values`` when it is not the stage's own (``augment``)."""
    prefix = group or stage

    def mark(key: str) -> str:
        if values.get(key) != AUTO:
            return ""
        return f" (auto: {recipe.name})" if recipe is not None and f"{prefix}.{key}" in recipe.values else " (auto)"

    parts = [f"{key}={resolved[key]}{mark(key)}" for key in resolved if key != "seed"]
    return f"{stage} {group + ' ' if group else ''}settings: " + ", ".join(parts)
