"""Writing a clustering model's predictions for every prepared image (scan and selflabel)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from scan_core.augment.settings import AugmentSettings
from scan_core.prediction_table import write_predictions_file
from scan_core.training.common import predict_probabilities
from tasks.device import device
from tasks.prepared import Prepared


def write_predictions(path: Path, model: torch.nn.Module, prepared: Prepared, augment: AugmentSettings) -> np.ndarray:
    """Predict every image (train and eval rows), write the predictions table, return the probabilities."""
    probabilities = predict_probabilities(model.to(device()), prepared.images, augment, 512, device())[0].numpy()
    write_predictions_file(path, prepared.manifest["index"].to_numpy(), prepared.manifest["source"].tolist(),
                           probabilities)
    return probabilities
