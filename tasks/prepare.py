"""prepare: read the data set once, store its images as one array and a manifest."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
from prefect import get_run_logger

from scan_core.data.image_set import ImageSet
from scan_core.data.sources import concatenate, load_image_set, resolve_splits
from scan_core.defaults import AUTO, MAX_AUTO_IMAGE_SIZE
from tasks.common import StagedOutputs, stage_task
from tasks.paths import DATASET_FILE, IMAGES_FILE, MANIFEST_FILE
from tasks.stages import group


def _manifest(image_set: ImageSet, in_train: np.ndarray, in_eval: np.ndarray) -> pd.DataFrame:
    labels = image_set.labels if image_set.labels is not None else np.full(len(image_set), -1)
    return pd.DataFrame(
        {
            "index": np.arange(len(image_set), dtype=np.int64),
            "source": image_set.sources,
            "label": labels.astype(np.int64),
            "in_train": in_train,
            "in_eval": in_eval,
            "content_hash": [hashlib.sha256(image.tobytes()).hexdigest() for image in image_set.images],
        }
    )


@stage_task("prepare")
def prepare(params: dict, inputs: dict, out: StagedOutputs) -> None:
    data = group(params, "data")
    image_size = None if data["image_size"] == AUTO else data["image_size"]
    # auto: the data set's held-out protocol (CIFAR/STL train -> test); all: every split.
    train_split, eval_split = resolve_splits(data["name"], data["train_split"], data["eval_split"])
    load = lambda split: load_image_set(  # noqa: E731
        data["name"], split, data["root"], image_size=image_size, subset_file=data["subset_file"],
        on_bad_image=data["on_bad_image"], download=data["download"],
    )
    train_set = load(train_split)
    if eval_split == train_split:
        image_set = train_set
        in_train = in_eval = np.ones(len(train_set), dtype=bool)
    else:
        eval_set = load(eval_split)
        image_set = concatenate([train_set, eval_set], f"{train_split}|{eval_split}")
        in_train = np.arange(len(image_set)) < len(train_set)
        in_eval = ~in_train
    labels = image_set.labels
    labeled_eval = int((labels[in_eval] >= 0).sum()) if labels is not None else 0

    train_pixels = image_set.images[in_train].astype(np.float64) / 255.0
    info = {
        "name": data["name"],
        "root": data["root"],  # the manifest's sources are relative to it (report thumbnails)
        "train_split": train_split,
        "eval_split": eval_split,
        "num_images": len(image_set),
        "num_train": int(in_train.sum()),
        "num_eval": int(in_eval.sum()),
        "num_labeled_eval": labeled_eval,
        "image_size": image_set.image_size,
        "channels": image_set.num_channels,
        "has_labels": labeled_eval > 0,  # some evaluation rows have labels; unknown ones are -1
        "class_names": image_set.class_names,
        "mean": train_pixels.mean(axis=(0, 1, 2)).round(6).tolist(),
        "std": np.maximum(train_pixels.std(axis=(0, 1, 2)), 1e-3).round(6).tolist(),
        "skipped": [{"source": source, "reason": reason} for source, reason in image_set.skipped],
    }
    np.save(out(IMAGES_FILE), image_set.images)
    _manifest(image_set, in_train, in_eval).to_parquet(out(MANIFEST_FILE), index=False)
    out(DATASET_FILE).write_text(json.dumps(info, indent=1))
    logger = get_run_logger()
    logger.info("prepared %d images (%d train, %d eval) of %s, %dx%d%s, %d channel(s)",
                len(image_set), info["num_train"], info["num_eval"], data["name"],
                image_set.image_size, image_set.image_size,
                f" (data.image_size auto: the images' own side, at most {MAX_AUTO_IMAGE_SIZE})"
                if image_size is None else "", image_set.num_channels)
    if image_set.skipped:
        logger.warning("left out %d unreadable image(s): %s", len(image_set.skipped),
                       ", ".join(source for source, _ in image_set.skipped))
