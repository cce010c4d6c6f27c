"""The evaluate stage scores every model the same way: fitted on training rows, scored on evaluation rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from tasks.evaluate import kmeans_baseline
from tasks.prepared import Prepared


def test_kmeans_baseline_is_fitted_on_the_training_rows_and_applied_to_the_evaluation_rows():
    train = np.repeat([0.0, 10.0, 20.0], 20) + np.tile(np.linspace(-1, 1, 20), 3)
    evaluated = np.array([4.0, 6.0, 14.0, 16.0])  # fitted on these alone, k-means would split them otherwise
    values = np.concatenate([train, evaluated])
    embeddings = np.stack([values, np.zeros_like(values)], axis=1).astype(np.float32)
    in_train = np.arange(len(values)) < len(train)
    prepared = Prepared(images=torch.zeros(len(values), 1, 1, 1, dtype=torch.uint8),
                        manifest=pd.DataFrame({"index": np.arange(len(values)), "in_train": in_train,
                                               "in_eval": ~in_train, "label": -1}),
                        info={"has_labels": False})

    on_eval, on_train = kmeans_baseline(prepared, embeddings, 3, seed=0)

    assert len(on_eval) == 4 and len(on_train) == len(train)
    nearest_train_cluster = [on_train[0], on_train[20], on_train[20], on_train[40]]  # centres 0, 10, 10, 20
    np.testing.assert_array_equal(on_eval, nearest_train_cluster)
