"""The per-image prediction table."""

from __future__ import annotations

import numpy as np

from scan_core.predictions import predictions_table, probability_matrix


def test_predictions_table_columns_and_round_trip() -> None:
    probabilities = np.array([[0.1, 0.7, 0.2], [0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    table = predictions_table(np.array([5, 9, 11]), ["a.png", "b.png", "c.png"], probabilities)
    assert list(table.columns) == ["index", "source", "cluster", "confidence", "probs"]
    assert table["index"].tolist() == [5, 9, 11] and table["index"].dtype == np.int64
    assert table["cluster"].tolist() == [1, 0, 2] and table["cluster"].dtype == np.int64
    np.testing.assert_allclose(table["confidence"], [0.7, 0.6, 0.6], rtol=1e-6)
    matrix = probability_matrix(table)
    assert matrix.dtype == np.float32 and matrix.shape == (3, 3)
    np.testing.assert_allclose(matrix, probabilities, rtol=1e-6)
