"""prepare: read the data set once, store its images as one array and a manifest, and
choose the recipe the later stages' ``auto`` keys follow.

The images are decoded and written chunk by chunk (``scan_core.data.image_writer``), so a
data set larger than memory can be prepared; every later stage reads rows back through
``scan_core.data.image_store``. The recipe (``scan_core.recipes``) follows from the stored
images' channel count and their native side before resizing; it is recorded under
``recipe`` in ``dataset.json``, an input of every later stage, so their caches still depend
only on params, inputs and code.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from prefect import get_run_logger

from scan_core.data.image_writer import WrittenImages, write_images
from scan_core.data.readers import check_on_bad_image
from scan_core.data.sources import resolve_splits, split_parts
from scan_core.defaults import AUTO
from scan_core.recipes import decide_recipe, working_side
from tasks.common import StagedOutputs, stage_task
from tasks.paths import DATASET_FILE, IMAGES_FILE, MANIFEST_FILE
from tasks.stages import group


def _manifest(written: WrittenImages, in_eval: np.ndarray) -> pd.DataFrame:
    labels = written.labels if written.labels is not None else np.full(written.count, -1)
    return pd.DataFrame(
        {
            "index": np.arange(written.count, dtype=np.int64),
            "source": written.sources,
            "label": labels.astype(np.int64),
            "in_train": written.in_train,
            "in_eval": in_eval,
            "content_hash": written.content_hashes,
        }
    )


@stage_task("prepare")
def prepare(params: dict, inputs: dict, out: StagedOutputs) -> None:
    data = group(params, "data")
    check_on_bad_image(data["on_bad_image"])
    logger = get_run_logger()
    image_size = None if data["image_size"] == AUTO else data["image_size"]
    # auto: the data set's held-out protocol (CIFAR/STL train -> test); all: every split.
    train_split, eval_split = resolve_splits(data["name"], data["train_split"], data["eval_split"])
    parts = lambda split: split_parts(data["name"], split, data["root"], data["subset_file"],  # noqa: E731
                                      data["download"])
    same = eval_split == train_split
    train_parts = parts(train_split)
    eval_parts = [] if same else parts(eval_split)
    # data.image_size auto: the recipe's working side, which does not need the channel count
    # that decoding is still to tell (scan_core.recipes.working_side).
    written = write_images([*train_parts, *eval_parts], [True] * len(train_parts) + [False] * len(eval_parts),
                           out(IMAGES_FILE), image_size, data["on_bad_image"],
                           auto_side=lambda native_side: working_side(data["recipe"], native_side))
    recipe = decide_recipe(data["recipe"], written.channels, written.native_side, written.count,
                           int(written.in_train.sum()))
    logger.info(recipe.describe(image_size))
    if image_size is None and written.image_size != recipe.values["data.image_size"]:
        raise RuntimeError(f"prepare wrote {written.image_size} px images but recipe {recipe.name} asks for "
                           f"{recipe.values['data.image_size']} px (scan_core.recipes.working_side)")
    in_eval = np.ones(written.count, dtype=bool) if same else ~written.in_train
    labels = written.labels
    labeled_eval = int((labels[in_eval] >= 0).sum()) if labels is not None else 0
    info = {
        "name": data["name"],
        "root": data["root"],  # the manifest's sources are relative to it (report thumbnails)
        "train_split": train_split,
        "eval_split": eval_split,
        "num_images": written.count,
        "num_train": int(written.in_train.sum()),
        "num_eval": int(in_eval.sum()),
        "num_labeled_eval": labeled_eval,
        "image_size": written.image_size,
        "channels": written.channels,
        "has_labels": labeled_eval > 0,  # some evaluation rows have labels; unknown ones are -1
        "class_names": written.class_names,
        "mean": np.round(written.mean, 6).tolist(),
        "std": np.maximum(written.std, 1e-3).round(6).tolist(),
        "skipped": [{"source": source, "reason": reason} for source, reason in written.skipped],
        # What the later stages' auto keys become (scan_core.recipes): name, reason, values.
        "recipe": recipe.as_dict(),
    }
    _manifest(written, in_eval).to_parquet(out(MANIFEST_FILE), index=False)
    out(DATASET_FILE).write_text(json.dumps(info, indent=1))
    logger.info("prepared %d images (%d train, %d eval) of %s, %dx%d%s, %d channel(s)",
                written.count, info["num_train"], info["num_eval"], data["name"],
                written.image_size, written.image_size,
                f" (data.image_size auto: {recipe.name})" if image_size is None else "", written.channels)
    for line in written.warnings:
        logger.warning(line)
    if written.skipped:
        logger.warning("left out %d unreadable image(s): %s", len(written.skipped),
                       ", ".join(source for source, _ in written.skipped))
