"""The per-image prediction table users read: cluster, confidence, full probabilities.

Built column by column in Arrow from the ``[N, C]`` probability matrix (``probs`` is one
list column whose values are that matrix's buffer, not N separate arrays) and written to
Parquet in row groups. The pandas view (:func:`predictions_table`) is Arrow's conversion of
that table, the same frame ``pd.read_parquet`` returns for the file: ``probs`` there holds
one array per row, because pandas cannot yet read back a Parquet file written from an
Arrow-backed list column (pandas-dev/pandas#53011, #59738), and a table users may write with
``to_parquet`` must stay readable.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

PROBS_TYPE = pa.list_(pa.field("element", pa.float32()))  # what pandas writes for a column of float32 arrays
ROW_GROUP_ROWS = 65_536


def predictions_arrow(indices: np.ndarray, sources: list[str], probabilities: np.ndarray) -> pa.Table:
    """One row per image: index, source, cluster (argmax), confidence (max prob), probs; the
    schema (pandas metadata included) ``DataFrame.to_parquet`` gave the table before."""
    probabilities = np.ascontiguousarray(probabilities, dtype=np.float32)
    scalars = pd.DataFrame({
        "index": np.asarray(indices, dtype=np.int64),
        "source": pd.Series(list(sources), dtype="str"),
        "cluster": probabilities.argmax(axis=1).astype(np.int64),
        "confidence": probabilities.max(axis=1) if len(probabilities) else np.zeros(0, np.float32),
    })
    count, width = probabilities.shape
    offsets = pa.array(np.arange(0, count * width + 1, width, dtype=np.int32) if count else np.zeros(1, np.int32))
    probs = pa.ListArray.from_arrays(offsets, pa.array(probabilities.reshape(-1)), type=PROBS_TYPE)
    table = pa.Table.from_pandas(scalars, preserve_index=False).append_column(pa.field("probs", PROBS_TYPE), probs)
    metadata = json.loads(table.schema.metadata[b"pandas"])
    metadata["columns"].append({"name": "probs", "field_name": "probs", "pandas_type": "list[float32]",
                                "numpy_type": "object", "metadata": None})
    return table.replace_schema_metadata({b"pandas": json.dumps(metadata).encode()})


def predictions_table(indices: np.ndarray, sources: list[str], probabilities: np.ndarray) -> pd.DataFrame:
    """:func:`predictions_arrow` as a DataFrame, the same one ``pd.read_parquet`` gives for its file."""
    return predictions_arrow(indices, sources, probabilities).to_pandas()


def write_predictions_file(path: Path | str, indices: np.ndarray, sources: list[str], probabilities: np.ndarray,
                           row_group_rows: int = ROW_GROUP_ROWS) -> None:
    """The predictions table written to Parquet in row groups of ``row_group_rows`` images."""
    pq.write_table(predictions_arrow(indices, sources, probabilities), path, row_group_size=row_group_rows)


def probability_matrix(table: pd.DataFrame) -> np.ndarray:
    """The ``[N, C]`` float32 probabilities of a predictions table."""
    probs = table["probs"]
    if not len(probs):
        return np.zeros((0, 0), np.float32)
    return np.stack(probs.to_numpy()).astype(np.float32, copy=False)
