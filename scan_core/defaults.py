"""What ``auto`` in params.yaml becomes: settings that follow the images.

A user who names only their folder should get a sensible run, so the working resolution,
the epochs and the batch sizes are derived from the data: its image side and its number of
images. Each rule is a plain function of those two numbers, so the same data gives the same
settings on every machine (and the same cache keys); each is overridable in params.yaml.
"""

from __future__ import annotations

import math
from typing import Any

AUTO = "auto"
MAX_AUTO_IMAGE_SIZE = 64

# Per training stage: images to see in all (epochs x number of images) and the epoch range.
# The budgets are the digits recipe (1,797 images: 100 pretext, 40 scan and 20 self-labeling
# epochs), which holds the number of optimiser steps about constant as data sets grow; the
# epoch floors keep large data sets from being trained for a token pass.
EPOCH_BUDGETS: dict[str, tuple[int, int, int]] = {
    "pretext": (180_000, 20, 500),
    "scan": (72_000, 10, 100),
    "selflabel": (36_000, 5, 200),
}
# scan.num_clusters auto: counts tried, 2 up to 50 and at most one cluster per 10 images.
MAX_AUTO_CLUSTERS = 50
IMAGES_PER_AUTO_CLUSTER = 10
MAX_BATCH_SIZES = {"pretext": 256, "scan": 128, "selflabel": 256}
MIN_BATCH_SIZE = 16


def auto_image_size(native_side: int) -> int:
    """The images' own side, capped at 64 px: larger photos cost far more on a CPU than the
    clustering gains from them (set ``data.image_size`` for full resolution on a GPU)."""
    return max(1, min(int(native_side), MAX_AUTO_IMAGE_SIZE))


def auto_epochs(stage: str, num_images: int) -> int:
    """Epochs that give every stage about the same number of optimiser steps at any size."""
    budget, lowest, highest = EPOCH_BUDGETS[stage]
    return int(min(highest, max(lowest, round(budget / max(num_images, 1)))))


def auto_batch_size(stage: str, num_images: int) -> int:
    """The stage's usual batch, halved until there are at least four batches per epoch."""
    largest = MAX_BATCH_SIZES[stage]
    fitting = 2 ** int(math.floor(math.log2(max(num_images // 4, 1))))
    return max(MIN_BATCH_SIZE, min(largest, fitting))


def auto_cluster_counts(num_images: int) -> range:
    """The cluster counts ``scan.num_clusters: auto`` chooses among."""
    return range(2, max(2, min(MAX_AUTO_CLUSTERS, num_images // IMAGES_PER_AUTO_CLUSTER)) + 1)


def resolve_stage(stage: str, values: dict[str, Any], num_images: int) -> dict[str, Any]:
    """A stage's params group with ``epochs`` and ``batch_size`` of ``auto`` made concrete."""
    resolved = dict(values)
    if resolved.get("epochs") == AUTO:
        resolved["epochs"] = auto_epochs(stage, num_images)
    if resolved.get("batch_size") == AUTO:
        resolved["batch_size"] = auto_batch_size(stage, num_images)
    return resolved


def describe_auto(stage: str, values: dict[str, Any], resolved: dict[str, Any]) -> str:
    """One line naming the settings in force, marking those that ``auto`` chose."""
    parts = [f"{key}={resolved[key]}" + (" (auto)" if values.get(key) == AUTO else "")
             for key in resolved if key != "seed"]
    return f"{stage} settings: " + ", ".join(parts)
