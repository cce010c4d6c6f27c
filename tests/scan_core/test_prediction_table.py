"""The per-image prediction table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from scan_core.prediction_table import predictions_arrow, predictions_table, probability_matrix, write_predictions_file


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


def test_probs_is_one_list_column_over_the_matrix_buffer() -> None:
    probabilities = np.random.default_rng(0).dirichlet(np.ones(4), size=6).astype(np.float32)
    probs = predictions_arrow(np.arange(6), [f"{i}.png" for i in range(6)], probabilities).column("probs").combine_chunks()
    np.testing.assert_array_equal(probs.offsets.to_numpy(), np.arange(0, 25, 4))
    np.testing.assert_array_equal(probs.values.to_numpy().reshape(6, 4), probabilities)


def test_written_file_has_row_groups_and_reads_back_as_the_old_frame(tmp_path) -> None:
    rng = np.random.default_rng(1)
    probabilities = rng.dirichlet(np.ones(3), size=10).astype(np.float32)
    sources = [f"img/{i}.png" for i in range(10)]
    path = tmp_path / "predictions.parquet"
    write_predictions_file(path, np.arange(10) * 3, sources, probabilities, row_group_rows=4)
    assert pq.ParquetFile(path).num_row_groups == 3  # 4 + 4 + 2 images
    # What DataFrame.to_parquet wrote before (one array per row) reads back identically.
    before = pd.DataFrame({"index": np.arange(10, dtype=np.int64) * 3, "source": sources,
                           "cluster": probabilities.argmax(axis=1), "confidence": probabilities.max(axis=1),
                           "probs": list(probabilities)})
    before.to_parquet(tmp_path / "before.parquet", index=False)
    expected, written = pd.read_parquet(tmp_path / "before.parquet"), pd.read_parquet(path)
    pd.testing.assert_frame_equal(written.drop(columns="probs"), expected.drop(columns="probs"))
    np.testing.assert_array_equal(probability_matrix(written), probabilities)
    assert pq.read_schema(path).equals(pq.read_schema(tmp_path / "before.parquet"))
    # The in-memory table is that same frame, and a user's to_parquet of it reads back.
    table = predictions_table(np.arange(10) * 3, sources, probabilities)
    table.to_parquet(tmp_path / "again.parquet", index=False)
    np.testing.assert_array_equal(probability_matrix(pd.read_parquet(tmp_path / "again.parquet")), probabilities)
