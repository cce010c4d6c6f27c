"""Sort new image files into the clusters of a trained model.

A trained model file (the scan or selflabel stage's ``model.pt``) describes everything
needed to treat a new image the way the training images were treated: the image size, the
number of channels and the per-channel mean and std. Files are decoded, resized and
cropped exactly as the folder reader does, then converted to the model's channels, and
predicted in batches, so the predictions for a file equal those the pipeline would give the
same image. Files are decoded one batch at a time: memory stays flat however many there are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image
from tqdm import tqdm

from scan_core.augment.settings import AugmentSettings
from scan_core.data.image_file import decode_file, padded_warning, printable_name
from scan_core.data.image_store import ImageRows
from scan_core.data.readers.folder import BadImageError, reason
from scan_core.devices import resolve_device
from scan_core.model_files import load_clustering_model
from scan_core.models import ClusteringModel
from scan_core.prediction_table import predictions_table
from scan_core.training.common import predict_probabilities

REQUIRED_DESCRIPTION = ("backbone", "in_channels", "num_clusters", "image_size", "mean", "std")


class ModelFileError(ValueError):
    """A model file lacks what inference needs (it predates image_size/mean/std, or is not a clustering model)."""


class UnreadableFilesError(BadImageError):
    """Some files could not be decoded; ``failures`` holds (path as given, reason) for each."""

    def __init__(self, failures: Sequence[tuple[str, str]], total: int, hint: str) -> None:
        self.failures = list(failures)
        self.total = total
        lines = [f"{len(self.failures)} of {total} file(s) could not be read as images:"]
        lines += [f"  {source}: {reason}" for source, reason in self.failures]
        if hint:
            lines.append(hint)
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class TrainedModel:
    """A clustering model with what it needs to know about its input."""

    model: ClusteringModel
    num_clusters: int
    in_channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    path: Path | None = None
    description: dict[str, Any] = field(default_factory=dict)

    @property
    def augment(self) -> AugmentSettings:
        """The normalisation the model was trained with (no augmentation is applied)."""
        return AugmentSettings(mean=self.mean, std=self.std)


@dataclass(frozen=True)
class FilePredictions:
    """The predictions table (one row per readable file), the files left out with reasons,
    and warning lines (images padded for their aspect ratio)."""

    table: pd.DataFrame
    skipped: list[tuple[str, str]]
    warnings: list[str] = field(default_factory=list)


def load_trained_model(path: Path | str) -> TrainedModel:
    """Load a scan/selflabel ``model.pt``; raise ``FileNotFoundError`` or ``ModelFileError``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} not found")
    try:
        model, description = load_clustering_model(path)
    except KeyError as error:
        raise ModelFileError(
            f"{path} is not a clustering model file (it has no {error.args[0]!r}); use the scan or "
            f"selflabel stage's model.pt"
        ) from None
    missing = [key for key in REQUIRED_DESCRIPTION if key not in description]
    if missing:
        raise ModelFileError(
            f"{path} lacks {', '.join(missing)}, which predicting on new files needs; it was written "
            f"by an older version of the pipeline: rerun the scan and selflabel stages"
        )
    in_channels = int(description["in_channels"])
    mean = tuple(float(value) for value in description["mean"])
    std = tuple(float(value) for value in description["std"])
    if in_channels not in (1, 3) or len(mean) != in_channels or len(std) != in_channels:
        raise ModelFileError(
            f"{path}: in_channels = {in_channels} with {len(mean)} mean and {len(std)} std values; "
            f"expected 1 or 3 channels and one mean/std value per channel"
        )
    return TrainedModel(
        model=model,
        num_clusters=int(description["num_clusters"]),
        in_channels=in_channels,
        image_size=int(description["image_size"]),
        mean=mean,
        std=std,
        path=path,
        description=description,
    )


def to_channels(image: np.ndarray, in_channels: int) -> np.ndarray:
    """``uint8[S, S]`` (grayscale) or ``uint8[S, S, 3]`` to ``uint8[S, S, in_channels]``.

    Grayscale is repeated to three channels; RGB becomes one channel by PIL's ITU-R 601-2
    luminance (what ``Image.convert("L")`` computes).
    """
    if in_channels == 1:
        gray = image if image.ndim == 2 else np.asarray(Image.fromarray(image, mode="RGB").convert("L"))
        return gray[..., None]
    if in_channels == 3:
        return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image
    raise ValueError(f"in_channels must be 1 or 3, got {in_channels}")


def load_image_file(path: Path | str, image_size: int, in_channels: int) -> np.ndarray:
    """One file as the model sees it: ``uint8[image_size, image_size, in_channels]``.

    Decoding, orientation, making it square and transparency handling are prepare's
    (``scan_core.data.image_file``).
    """
    return to_channels(decode_file(Path(path), image_size).pixels, in_channels)


def predict_arrays(
    trained: TrainedModel, images: np.ndarray | torch.Tensor | ImageRows, batch_size: int = 256,
    device: str | torch.device = "auto",
) -> np.ndarray:
    """Cluster probabilities ``float32[N, num_clusters]`` for ``uint8[N, S, S, C]`` images (an
    ``ImageStore`` of a prepared ``images.npy`` is read batch by batch, never whole)."""
    device = resolve_device(device) if isinstance(device, str) else device
    rows = images if isinstance(images, ImageRows) else torch.as_tensor(np.asarray(images, dtype=np.uint8))
    trained.model.to(device)
    return predict_probabilities(trained.model, rows, trained.augment, batch_size, device)[0].numpy()


def predict_files(
    paths: Sequence[Path | str],
    model: TrainedModel | Path | str,
    batch_size: int = 256,
    device: str | torch.device = "auto",
    skip_bad: bool = False,
    progress: bool | None = None,
) -> FilePredictions:
    """Predict the cluster of every file in ``paths``.

    The table's ``index`` is the file's position in ``paths`` and ``source`` the path as
    given. A file that cannot be read raises ``UnreadableFilesError`` listing every such file
    (all files are still decoded, so the list is complete; the model stops running at the
    first bad file); with ``skip_bad`` they are left out and returned in ``skipped``.
    ``progress=None`` shows a progress bar only on a terminal.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if not paths:
        raise ValueError("no image files given")
    trained = model if isinstance(model, TrainedModel) else load_trained_model(model)
    device = resolve_device(device) if isinstance(device, str) else device
    trained.model.to(device)

    kept: list[int] = []
    probabilities: list[np.ndarray] = []
    failures: list[tuple[str, str]] = []
    padded: list[str] = []
    batch: list[np.ndarray] = []
    batch_rows: list[int] = []

    def flush() -> None:
        if batch and (skip_bad or not failures):
            tensor = torch.from_numpy(np.stack(batch))
            probabilities.append(
                predict_probabilities(trained.model, tensor, trained.augment, batch_size, device)[0].numpy())
            kept.extend(batch_rows)
        batch.clear()
        batch_rows.clear()

    disable = None if progress is None else not progress  # None: only on a terminal
    with tqdm(total=len(paths), desc="predicting", unit="img", disable=disable) as bar:
        for row, path in enumerate(paths):
            try:
                image = decode_file(Path(path), trained.image_size)
            except Exception as error:  # noqa: BLE001 - any decoder failure marks the file bad
                failures.append((printable_name(str(path)), reason(error)))
            else:
                batch.append(to_channels(image.pixels, trained.in_channels))
                batch_rows.append(row)
                if image.padded:
                    padded.append(printable_name(str(path)))
                if len(batch) == batch_size:
                    flush()
            bar.update(1)
        flush()

    if failures and not skip_bad:
        raise UnreadableFilesError(
            failures, len(paths), "Fix or remove them, or pass skip_bad=True to leave them out.")
    if not kept:
        raise UnreadableFilesError(failures, len(paths), "None of the files could be read.")
    table = predictions_table(
        np.asarray(kept, dtype=np.int64), [str(paths[row]) for row in kept], np.concatenate(probabilities))
    return FilePredictions(table=table, skipped=failures, warnings=[padded_warning(padded)] if padded else [])
