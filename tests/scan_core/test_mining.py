"""Nearest-neighbor mining against brute force, and the helpers reading its table."""

from __future__ import annotations

import logging
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from scan_core.knn import exact_search, recall_at_k
from scan_core.mining import (
    NEIGHBOR_COLUMNS, _drop_self, l2_normalize, mine_neighbors, mined_purity, neighbor_matrix, neighbor_purity,
    read_neighbor_matrix, search_neighbors, torch_search, write_neighbors,
)
from tests.scan_core.test_knn import clustered


def _brute_force(embeddings: np.ndarray, topk: int) -> tuple[np.ndarray, np.ndarray]:
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    order = np.argsort(-similarity, axis=1)[:, :topk]
    return order, np.take_along_axis(similarity, order, axis=1)


def test_mine_neighbors_matches_brute_force_cosine_topk() -> None:
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(60, 8)) * rng.uniform(0.1, 10.0, size=(60, 1))  # cosine, not L2
    topk = 5
    table = mine_neighbors(embeddings, topk)
    expected_neighbors, expected_similarity = _brute_force(embeddings, topk)
    assert len(table) == 60 * topk
    for anchor, rows in table.groupby("anchor"):
        rows = rows.sort_values("rank")
        assert rows["rank"].tolist() == list(range(1, topk + 1))
        assert set(rows["neighbor"]) == set(expected_neighbors[anchor])
        np.testing.assert_allclose(rows["similarity"], expected_similarity[anchor], atol=1e-5)
        assert (np.diff(rows["similarity"].to_numpy()) <= 1e-6).all()  # rank 1 is the nearest


def test_mine_neighbors_column_dtypes() -> None:
    table = mine_neighbors(np.random.default_rng(1).normal(size=(10, 3)), 2)
    assert list(table.columns) == ["anchor", "rank", "neighbor", "similarity"]
    assert {column: str(dtype) for column, dtype in table.dtypes.items()} == {
        "anchor": "int64", "rank": "int32", "neighbor": "int64", "similarity": "float32"
    }
    assert NEIGHBOR_COLUMNS == {"anchor": "int64", "rank": "int32", "neighbor": "int64", "similarity": "float32"}
    assert sorted(table["rank"].unique()) == [1, 2]


def test_image_is_never_its_own_neighbor() -> None:
    table = mine_neighbors(np.random.default_rng(2).normal(size=(30, 4)), 29)
    assert not (table["anchor"] == table["neighbor"]).any()
    # With k = N - 1, every other image appears exactly once.
    assert (table.groupby("anchor")["neighbor"].nunique() == 29).all()


@pytest.mark.parametrize("topk", [1, 3, 5])
def test_exact_duplicates_are_neighbors_but_never_self(topk: int) -> None:
    base = np.random.default_rng(3).normal(size=(5, 4))
    embeddings = np.repeat(base, 6, axis=0)  # rows 6g..6g+5 are identical copies
    table = mine_neighbors(embeddings, topk)
    assert not (table["anchor"] == table["neighbor"]).any()
    assert (table.groupby("anchor").size() == topk).all()
    assert (table["anchor"] // 6 == table["neighbor"] // 6).all()  # a copy is the nearest
    assert (table.groupby("anchor")["neighbor"].nunique() == topk).all()
    np.testing.assert_allclose(table["similarity"], 1.0, atol=1e-5)


def test_ids_map_rows_to_image_indices() -> None:
    rng = np.random.default_rng(4)
    embeddings = rng.normal(size=(20, 5))
    ids = np.arange(20) * 10 + 7
    table = mine_neighbors(embeddings, 3, ids=ids)
    plain = mine_neighbors(embeddings, 3)
    assert set(table["anchor"]) == set(ids)
    np.testing.assert_array_equal(table["anchor"], ids[plain["anchor"]])
    np.testing.assert_array_equal(table["neighbor"], ids[plain["neighbor"]])
    np.testing.assert_array_equal(table["similarity"], plain["similarity"])
    assert table["anchor"].dtype == np.int64 and table["neighbor"].dtype == np.int64


@pytest.mark.parametrize("topk", [0, -1, 10, 11])
def test_topk_out_of_range_raises(topk: int) -> None:
    with pytest.raises(ValueError, match="topk"):
        mine_neighbors(np.random.default_rng(5).normal(size=(10, 3)), topk)


def test_topk_of_all_other_images_is_allowed() -> None:
    assert len(mine_neighbors(np.random.default_rng(5).normal(size=(10, 3)), 9)) == 90


def test_torch_search_gives_faiss_exact_neighbors() -> None:
    faiss = pytest.importorskip("faiss")
    rng = np.random.default_rng(6)
    vectors = l2_normalize(rng.normal(size=(500, 16)))
    index = faiss.IndexFlatIP(16)
    index.add(vectors)
    expected_similarity, expected_neighbors = index.search(vectors, 11)
    # 7 queries per block: blocks that do not divide 500 still cover every query once.
    similarity, neighbors = torch_search(vectors, 11, "cpu", block_elements=7 * 500)
    assert neighbors.shape == (500, 11) and neighbors.dtype == np.int64
    np.testing.assert_array_equal(neighbors, expected_neighbors)  # random data: no ties
    np.testing.assert_allclose(similarity, expected_similarity, atol=1e-5)


def test_mining_without_faiss_falls_back_to_torch_and_warns(monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    embeddings = np.random.default_rng(7).normal(size=(200, 12))
    with_faiss = mine_neighbors(embeddings, 10) if _importable("faiss") else None
    monkeypatch.setitem(sys.modules, "faiss", None)  # `import faiss` now raises ImportError
    with caplog.at_level(logging.WARNING, logger="scan_core.mining"):
        without_faiss = mine_neighbors(embeddings, 10)
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert "torch" in warnings[0] and '".[cpu]"' in warnings[0] and '".[gpu]"' in warnings[0]
    expected_neighbors, expected_similarity = _brute_force(embeddings, 10)
    matrix = without_faiss.sort_values(["anchor", "rank"])["neighbor"].to_numpy().reshape(200, 10)
    np.testing.assert_array_equal(matrix, expected_neighbors)
    np.testing.assert_allclose(without_faiss["similarity"].to_numpy().reshape(200, 10), expected_similarity,
                               atol=1e-5)
    if with_faiss is not None:
        pd.testing.assert_frame_equal(without_faiss[["anchor", "rank", "neighbor"]],
                                      with_faiss[["anchor", "rank", "neighbor"]])


def test_mining_imports_and_searches_without_faiss_pydantic_or_prefect() -> None:
    """What bench/gpu.sh's machine has: torch, numpy, pandas, pyarrow, no faiss/pydantic/prefect."""
    blocked = ("import sys\n"
               "for name in ('faiss', 'pydantic', 'prefect', 'dvc'): sys.modules[name] = None\n"
               "import numpy as np, scan_core.mining as m, scan_core.prediction_table\n"
               "mined = m.search_neighbors(np.random.default_rng(0).normal(size=(50, 4)), 3, approximate_above=10)\n"
               "print(mined.backend, mined.index)")
    result = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["torch", "exact"]


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def _hand_table() -> pd.DataFrame:
    # Anchors 10, 20, 30 with two ranked neighbors each, rows deliberately shuffled.
    rows = [
        (20, 2, 30, 0.5), (10, 1, 20, 0.9), (30, 1, 20, 0.7),
        (10, 2, 30, 0.6), (20, 1, 10, 0.8), (30, 2, 10, 0.1),
    ]
    table = pd.DataFrame(rows, columns=["anchor", "rank", "neighbor", "similarity"])
    return table.astype(NEIGHBOR_COLUMNS)


def test_neighbor_matrix_orders_by_anchor_and_rank() -> None:
    anchors, neighbors = neighbor_matrix(_hand_table(), 2)
    np.testing.assert_array_equal(anchors, [10, 20, 30])
    np.testing.assert_array_equal(neighbors, [[20, 30], [10, 30], [20, 10]])
    anchors, neighbors = neighbor_matrix(_hand_table(), 1)
    np.testing.assert_array_equal(anchors, [10, 20, 30])
    np.testing.assert_array_equal(neighbors, [[20], [10], [20]])


def test_neighbor_matrix_refuses_more_neighbors_than_mined() -> None:
    with pytest.raises(ValueError, match="num_neighbors=3"):
        neighbor_matrix(_hand_table(), 3)


def test_neighbor_purity_by_hand() -> None:
    labels = np.zeros(31, dtype=np.int64)
    labels[[10, 20]] = 1  # 10 and 20 share a label, 30 does not
    purity = neighbor_purity(_hand_table(), labels, [1, 2, 5])
    # rank 1: 10->20 same, 20->10 same, 30->20 diff -> 2/3
    # ranks 1-2 add 10->30 diff, 20->30 diff, 30->10 diff -> 2/6 (k counts all ranks <= k)
    assert purity == {1: pytest.approx(2 / 3), 2: pytest.approx(2 / 6)}


def test_neighbor_purity_leaves_out_pairs_with_an_unknown_label() -> None:
    labels = np.zeros(31, dtype=np.int64)
    labels[[10, 20]] = 1
    labels[30] = -1  # an unlabeled image: no pair with it counts, not even -1 with -1
    purity = neighbor_purity(_hand_table(), labels, [1, 2])
    # known pairs: rank 1 10->20 same, 20->10 same; rank 2 adds none (all involve 30)
    assert purity == {1: pytest.approx(1.0), 2: pytest.approx(1.0)}
    assert neighbor_purity(_hand_table(), np.full(31, -1), [1, 2]) == {}


def test_drop_self_skips_the_query_and_missing_hits_and_flags_short_rows() -> None:
    found = np.array([[0, 3, -1], [2, 1, 0], [5, 2, 4]])
    similarity = np.array([[1.0, 0.5, -np.inf], [0.9, 1.0, 0.4], [0.8, 0.7, 0.6]], dtype=np.float32)
    neighbors, scores, complete = _drop_self(found, similarity, np.array([0, 1, 2]), 2)
    # row 0: itself and a missing hit leave one neighbor; row 1: itself second; row 2: itself absent
    np.testing.assert_array_equal(complete, [False, True, True])
    np.testing.assert_array_equal(neighbors[1:], [[2, 0], [5, 4]])
    np.testing.assert_allclose(scores[1:], [[0.9, 0.4], [0.8, 0.6]])


def test_approximate_mining_above_the_threshold_measures_its_recall() -> None:
    pytest.importorskip("faiss")
    embeddings = clustered(6000, 16, 30, seed=8) * 3.0  # cosine: the scale must not matter
    ids = np.arange(6000) + 100
    mined = search_neighbors(embeddings, 10, ids, approximate_above=5999, nprobe=8, recall_sample=400)
    assert (mined.index, mined.backend, mined.recall_queries, mined.nlist, mined.nprobe) == ("ivf", "faiss-cpu", 400, 153, 8)
    assert not (mined.neighbors == mined.ids[:, None]).any() and mined.neighbors.min() >= 100
    # The recorded recall is the one of the same seeded sample, recomputed here.
    sample = np.sort(np.random.default_rng(0).choice(6000, 400, replace=False))
    _, truth = exact_search(l2_normalize(embeddings), 11, queries=l2_normalize(embeddings)[sample])
    truth = np.array([row[row != anchor][:10] for row, anchor in zip(truth, sample)]) + 100
    assert mined.recall_at_k == pytest.approx(recall_at_k(mined.neighbors[sample], truth))
    assert 0.9 <= mined.recall_at_k < 1.0  # 8 of 153 lists: close to exact, not exact
    assert mined.search_metrics() == {"index": "ivf", "backend": "faiss-cpu", "recall_at_k": round(mined.recall_at_k, 6),
                                      "recall_queries": 400, "nlist": 153, "nprobe": 8}


def test_exact_mining_at_the_threshold_reports_recall_one() -> None:
    embeddings = clustered(500, 8, 5, seed=9)
    mined = search_neighbors(embeddings, 4, approximate_above=500)
    assert mined.search_metrics() == {"index": "exact", "backend": mined.backend, "recall_at_k": 1.0}
    expected, _ = _brute_force(embeddings, 4)
    np.testing.assert_array_equal(np.sort(mined.neighbors, axis=1), np.sort(expected, axis=1))


def test_approximate_without_faiss_mines_exactly_and_says_so(monkeypatch: pytest.MonkeyPatch,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    embeddings = np.random.default_rng(10).normal(size=(300, 6))
    monkeypatch.setitem(sys.modules, "faiss", None)
    with caplog.at_level(logging.WARNING, logger="scan_core.mining"):
        mined = search_neighbors(embeddings, 5, approximate_above=100)
    [warning] = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert "300 anchors are above mine.approximate_above=100" in warning and "needs faiss" in warning
    assert (mined.index, mined.backend, mined.recall_at_k) == ("exact", "torch", 1.0)
    np.testing.assert_array_equal(mined.neighbors, _brute_force(embeddings, 5)[0])


def test_neighbors_parquet_is_written_in_row_groups_of_whole_anchors(tmp_path) -> None:
    mined = search_neighbors(np.random.default_rng(11).normal(size=(100, 5)), 5, ids=np.arange(100) * 2)
    path = tmp_path / "neighbors.parquet"
    groups = write_neighbors(path, mined, row_group_rows=64)
    parquet = pq.ParquetFile(path)
    assert groups == parquet.num_row_groups == 9  # 12 anchors (60 rows) per group: 8 full, 1 of 4 anchors
    assert [parquet.metadata.row_group(g).num_rows for g in range(9)] == [60] * 8 + [20]
    table = pd.read_parquet(path)
    pd.testing.assert_frame_equal(table, mined.table())
    assert {column: str(dtype) for column, dtype in table.dtypes.items()} == NEIGHBOR_COLUMNS
    for count in (None, 3):
        anchors, neighbors = read_neighbor_matrix(path, count)
        np.testing.assert_array_equal(anchors, np.arange(100) * 2)
        np.testing.assert_array_equal(neighbors, mined.neighbors[:, : count or 5])


def test_neighbor_matrix_of_a_shuffled_table_equals_the_ordered_one() -> None:
    table = mine_neighbors(np.random.default_rng(12).normal(size=(40, 4)), 6)
    shuffled = table.sample(frac=1.0, random_state=0)
    for count in (6, 2):
        ordered_anchors, ordered = neighbor_matrix(table, count)
        anchors, neighbors = neighbor_matrix(shuffled, count)
        np.testing.assert_array_equal(anchors, ordered_anchors)
        np.testing.assert_array_equal(neighbors, ordered)


def test_mined_purity_equals_the_table_purity() -> None:
    rng = np.random.default_rng(13)
    mined = search_neighbors(rng.normal(size=(80, 3)), 7, ids=np.arange(80) + 5)
    labels = rng.integers(-1, 3, size=85)  # some unknown
    assert mined_purity(mined, labels, [1, 3, 7, 9]) == pytest.approx(neighbor_purity(mined.table(), labels, [1, 3, 7, 9]))
