"""The per-image prediction table users read: cluster, confidence, full probabilities."""

from __future__ import annotations

import numpy as np
import pandas as pd


def predictions_table(indices: np.ndarray, sources: list[str], probabilities: np.ndarray) -> pd.DataFrame:
    """One row per image: index, source, cluster (argmax), confidence (max prob), probs."""
    probabilities = np.asarray(probabilities, dtype=np.float32)
    return pd.DataFrame(
        {
            "index": np.asarray(indices, dtype=np.int64),
            "source": list(sources),
            "cluster": probabilities.argmax(axis=1).astype(np.int64),
            "confidence": probabilities.max(axis=1),
            "probs": list(probabilities),
        }
    )


def probability_matrix(table: pd.DataFrame) -> np.ndarray:
    return np.stack(table["probs"].to_numpy()).astype(np.float32)
