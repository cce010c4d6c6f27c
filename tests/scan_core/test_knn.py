"""Search backends: the blocked torch search against faiss exact, IVF recall on clustered data."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from scan_core.knn import exact_search, ivf_lists, ivf_search, recall_at_k, torch_search
from scan_core.mining import l2_normalize


def clustered(count: int, dims: int, clusters: int, seed: int = 0, spread: float = 1.0) -> np.ndarray:
    """Unit vectors around ``clusters`` random centres (a mixture of Gaussians, normalised)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dims))
    return l2_normalize(centres[rng.integers(0, clusters, count)] + spread * rng.normal(size=(count, dims)))


def _faiss_flat(vectors: np.ndarray, count: int, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    faiss = pytest.importorskip("faiss")
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    return index.search(queries, count)


@pytest.mark.parametrize("key_block", [37, 500, 1 << 18])
def test_blocked_torch_search_equals_faiss_exact(key_block: int) -> None:
    vectors = l2_normalize(np.random.default_rng(0).normal(size=(500, 16)))
    expected_similarity, expected = _faiss_flat(vectors, 11, vectors)
    # 37-row key blocks: 14 blocks, the last one short, each merged into the running top-11.
    similarity, found = torch_search(vectors, 11, "cpu", block_elements=37 * 9, key_block=key_block)
    np.testing.assert_array_equal(found, expected)  # random data: no ties
    np.testing.assert_allclose(similarity, expected_similarity, atol=1e-5)


def test_torch_search_of_some_queries_equals_their_rows_of_the_full_search() -> None:
    vectors = l2_normalize(np.random.default_rng(1).normal(size=(300, 8)))
    rows = np.array([3, 150, 299, 7])
    _, full = torch_search(vectors, 6)
    similarity, found = torch_search(vectors, 6, queries=vectors[rows], key_block=64)
    np.testing.assert_array_equal(found, full[rows])
    np.testing.assert_allclose(similarity[:, 0], 1.0, atol=1e-5)  # each query finds itself first


def test_exact_search_uses_faiss_or_torch_with_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    vectors = l2_normalize(np.random.default_rng(2).normal(size=(200, 8)))
    _, with_faiss = exact_search(vectors, 5)
    monkeypatch.setitem(sys.modules, "faiss", None)  # `import faiss` now fails
    _, with_torch = exact_search(vectors, 5)
    np.testing.assert_array_equal(with_torch, with_faiss)


def test_ivf_lists_is_four_square_roots_with_39_training_vectors_each() -> None:
    assert ivf_lists(200_000) == 1789  # round(4 * 447.2)
    assert ivf_lists(1_281_167) == 4528
    assert ivf_lists(1000) == 25  # 4 sqrt = 126 lists would get 8 vectors each: 1000 // 39
    assert ivf_lists(10) == 1


def test_recall_at_k_by_hand() -> None:
    truth = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    found = np.array([[4, 3, 9, 1], [5, 6, 7, 8]])  # 3 of 4, then 4 of 4, order ignored
    assert recall_at_k(found, truth) == pytest.approx(7 / 8)
    with pytest.raises(ValueError, match="shape"):
        recall_at_k(found[:, :3], truth)


def test_ivf_recall_on_clustered_data() -> None:
    pytest.importorskip("faiss")
    vectors = clustered(20_000, 32, 50)
    similarity, found = ivf_search(vectors, 21, nprobe=64)
    assert found.shape == (20_000, 21) and (found >= 0).all()
    queries = np.random.default_rng(3).choice(20_000, 500, replace=False)
    _, truth = _faiss_flat(vectors, 21, vectors[queries])
    assert recall_at_k(found[queries], truth) >= 0.95  # measured: 0.998
    assert (np.diff(similarity, axis=1) <= 1e-6).all()


def test_ivf_with_one_probe_finds_fewer_neighbors_than_exact() -> None:
    """The bound above is not vacuous: probing one list of many loses neighbors."""
    pytest.importorskip("faiss")
    vectors = l2_normalize(np.random.default_rng(4).normal(size=(5000, 32)))  # uniform: IVF's worst case
    _, found = ivf_search(vectors, 21, nprobe=1)
    _, truth = _faiss_flat(vectors, 21, vectors[:300])
    assert recall_at_k(found[:300], truth) < 0.5  # measured: 0.20


@pytest.mark.gpu
def test_torch_search_on_cuda_equals_cpu() -> None:
    vectors = l2_normalize(np.random.default_rng(5).normal(size=(3000, 64)))
    cpu_similarity, cpu_found = torch_search(vectors, 21, "cpu")
    torch.backends.cuda.matmul.allow_tf32 = True  # the search must not use it
    gpu_similarity, gpu_found = torch_search(vectors, 21, "cuda", key_block=1000)
    assert (gpu_found == cpu_found).mean() > 0.999  # float32 sums in another order: rare near-ties swap
    np.testing.assert_allclose(gpu_similarity, cpu_similarity, atol=1e-5)


@pytest.mark.gpu
def test_faiss_gpu_search_equals_cpu() -> None:
    faiss = pytest.importorskip("faiss")
    if not hasattr(faiss, "get_num_gpus") or faiss.get_num_gpus() == 0:
        pytest.skip("faiss-gpu is not installed")
    vectors = clustered(20_000, 32, 50)
    _, on_cpu = exact_search(vectors, 21, "cpu")
    _, on_gpu = exact_search(vectors, 21, "cuda")
    assert (on_gpu == on_cpu).mean() > 0.999
    _, approximate = ivf_search(vectors, 21, nprobe=64, device="cuda")
    assert recall_at_k(approximate[:500], on_cpu[:500]) >= 0.95
