"""Reading the prepare stage's artifacts back: images, manifest and data set description.

Images come as an ``ImageStore``: rows are read from ``images.npy`` when indexed, so a stage
holds only the batches it works on, however large the data set. ``recipe`` is the recipe
prepare chose (``scan_core.recipes``), from which the training stages resolve ``auto``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scan_core.data.image_store import ImageRows, ImageStore
from scan_core.recipes import RecipeChoice
from tasks.paths import DATASET_FILE, IMAGES_FILE, MANIFEST_FILE


@dataclass
class Prepared:
    images: ImageStore  # every prepared image; ``images[rows]`` reads uint8 [B, H, W, C]
    manifest: pd.DataFrame
    info: dict[str, Any]

    @property
    def train_rows(self) -> np.ndarray:
        return np.flatnonzero(self.manifest["in_train"].to_numpy())

    @property
    def eval_rows(self) -> np.ndarray:
        return np.flatnonzero(self.manifest["in_eval"].to_numpy())

    @property
    def train_images(self) -> ImageRows:
        """The training rows, read on demand (row i of the view is ``train_rows[i]``)."""
        return self.images.rows(self.train_rows)

    @property
    def eval_images(self) -> ImageRows:
        """The evaluation rows, read on demand (row i of the view is ``eval_rows[i]``)."""
        return self.images.rows(self.eval_rows)

    @property
    def labels(self) -> np.ndarray | None:
        return self.manifest["label"].to_numpy() if self.info["has_labels"] else None

    @property
    def recipe(self) -> RecipeChoice:
        return recorded_recipe(self.info)


def recorded_recipe(info: dict[str, Any]) -> RecipeChoice:
    """The recipe prepare recorded in ``dataset.json`` (what the ``auto`` keys become)."""
    if "recipe" not in info:
        raise FileNotFoundError(f"{DATASET_FILE} records no recipe (it was written before recipes were "
                                f"chosen); rerun prepare: dvc repro --force prepare")
    return RecipeChoice.from_dict(info["recipe"])


def load_prepared() -> Prepared:
    """The prepare stage's outputs, checked to belong together."""
    if not DATASET_FILE.exists():
        raise FileNotFoundError(f"{DATASET_FILE} is missing: run the prepare stage first (dvc repro prepare)")
    prepared = Prepared(
        images=ImageStore(IMAGES_FILE),
        manifest=pd.read_parquet(MANIFEST_FILE),
        info=json.loads(DATASET_FILE.read_text()),
    )
    counts = {"images.npy": len(prepared.images), "manifest.parquet": len(prepared.manifest),
              "dataset.json": prepared.info["num_images"]}
    if len(set(counts.values())) != 1:
        raise FileNotFoundError(f"the prepare stage's outputs do not belong together ({counts} images); "
                                f"rerun it: dvc repro --force prepare")
    return prepared


def load_rows(path: Path, prepared: Prepared) -> np.ndarray:
    """A per-image array written by a later stage (embeddings), checked against the prepared images."""
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run the stage that writes it first (dvc repro)")
    values = np.load(path)
    if len(values) != len(prepared.manifest):
        raise FileNotFoundError(f"{path} has {len(values)} rows for {len(prepared.manifest)} prepared images; "
                                f"it belongs to other data: dvc repro")
    return values
