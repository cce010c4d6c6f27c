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


def test_kmeans_baseline_above_the_fit_size_fits_a_sample_and_assigns_every_row(monkeypatch):
    import tasks.evaluate as evaluate_module

    rng = np.random.default_rng(1)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    train = centres[np.arange(300) % 3] + rng.normal(scale=0.5, size=(300, 2))
    evaluated = centres[[2, 0, 1]] + 0.1
    embeddings = np.concatenate([train, evaluated]).astype(np.float32)
    in_train = np.arange(len(embeddings)) < 300
    prepared = Prepared(images=torch.zeros(len(embeddings), 1, 1, 1, dtype=torch.uint8),
                        manifest=pd.DataFrame({"index": np.arange(len(embeddings)), "in_train": in_train,
                                               "in_eval": ~in_train, "label": -1}),
                        info={"has_labels": False})
    full_eval, full_train = kmeans_baseline(prepared, embeddings, 3, seed=0)
    monkeypatch.setattr(evaluate_module, "KMEANS_FIT_ROWS", 30)  # 300 rows: fit on a sample of 30

    on_eval, on_train = kmeans_baseline(prepared, embeddings, 3, seed=0)

    assert len(on_train) == 300 and len(on_eval) == 3
    # Well separated clusters: the sample finds the same partition as all rows (labels may differ).
    pairs = set(zip(on_train.tolist(), full_train.tolist()))
    assert len(pairs) == 3 and len({a for a, _ in pairs}) == 3
    assert [on_train[2], on_train[0], on_train[1]] == on_eval.tolist()
    np.testing.assert_array_equal(kmeans_baseline(prepared, embeddings, 3, seed=0)[1], on_train)  # seeded
