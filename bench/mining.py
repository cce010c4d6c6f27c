"""Benchmark 2: mining the top-20 neighbors of 200,000 x 128 unit vectors with faiss exact
(IndexFlatIP), the approximate IVF-Flat index the mine stage uses above
mine.approximate_above, scikit-learn's brute force and the torch fallback: times, ratios
to faiss exact, recall@20 against faiss exact.

    python bench/mining.py [--count 200000] [--dims 128] [--queries 10000] [--sklearn-queries 2000]
        [--data clustered|uniform] [--nprobe 64] [--device cpu]

Every method indexes all vectors; searches are timed on a seeded subset of the vectors as
queries (all of them with ``--queries`` = ``--count``) and the time for all vectors is that
time scaled by count / queries, said so in the output. Data: a mixture of 100 Gaussians
(centres and noise of unit scale per dimension), normalised -- uniform random directions,
IVF's worst case, with ``--data uniform``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scan_core.knn import build_ivf, faiss_exact_search, ivf_lists, recall_at_k, torch_search  # noqa: E402
from scan_core.mining import l2_normalize  # noqa: E402


def vectors(kind: str, count: int, dims: int, clusters: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        return l2_normalize(rng.normal(size=(count, dims)))
    centres = rng.normal(size=(clusters, dims))
    return l2_normalize(centres[rng.integers(0, clusters, count)] + rng.normal(size=(count, dims)))


def without_self(found: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """Each query's first ``k`` hits other than itself (searched with k + 1)."""
    keep = found != rows[:, None]
    keep &= np.cumsum(keep, axis=1) <= k
    return np.stack([row[mask] for row, mask in zip(found, keep)])


def timed(call):
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--dims", type=int, default=128)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--data", choices=("clustered", "uniform"), default="clustered")
    parser.add_argument("--clusters", type=int, default=100)
    parser.add_argument("--queries", type=int, default=10_000, help="queries timed for faiss, IVF and torch")
    parser.add_argument("--sklearn-queries", type=int, default=2_000, help="queries timed for scikit-learn")
    parser.add_argument("--nprobe", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import faiss
    from sklearn.neighbors import NearestNeighbors

    base = vectors(args.data, args.count, args.dims, args.clusters, args.seed)
    rng = np.random.default_rng(args.seed + 1)
    rows = np.sort(rng.choice(args.count, args.queries, replace=False))
    sk_rows = rows[np.sort(rng.choice(len(rows), min(args.sklearn_queries, len(rows)), replace=False))]
    k, scale = args.k, args.count / args.queries
    print(f"# bench/mining.py, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
          f"{os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f}), faiss {faiss.__version__} "
          f"({faiss.omp_get_max_threads()} threads), torch {torch.__version__}, device {args.device}")
    print(f"# data: {args.count:,} x {args.dims} unit vectors, "
          + (f"a mixture of {args.clusters} Gaussians (unit-scale centres and noise), normalised"
             if args.data == "clustered" else "uniform random directions (IVF's worst case)")
          + f"; k = {k}; searches timed on {args.queries:,} queries ({args.sklearn_queries:,} for scikit-learn), "
            f"times for all {args.count:,} scaled from them")

    exact_time, (_, exact) = timed(lambda: faiss_exact_search(base, k + 1, args.device, base[rows]))
    truth = without_self(exact, rows, k)
    nlist = ivf_lists(args.count)
    build_time, index = timed(lambda: build_ivf(base, args.nprobe, args.device, args.seed))
    ivf_time, (_, approximate) = timed(lambda: index.search(base[rows], k + 1))
    torch_time, (_, from_torch) = timed(lambda: torch_search(base, k + 1, args.device, queries=base[rows]))
    sklearn = NearestNeighbors(n_neighbors=k + 1, algorithm="brute", metric="cosine")
    fit_time, _ = timed(lambda: sklearn.fit(base))
    sk_time, sk_found = timed(lambda: sklearn.kneighbors(base[sk_rows], return_distance=False))
    sk_truth = truth[np.searchsorted(rows, sk_rows)]

    results = [
        ("faiss exact (IndexFlatIP)", 0.0, exact_time * scale, 1.0),
        (f"faiss IVF-Flat (nlist {nlist}, nprobe {args.nprobe})", build_time, ivf_time * scale,
         recall_at_k(without_self(approximate, rows, k), truth)),
        ("torch blocked matmul + topk", 0.0, torch_time * scale, recall_at_k(without_self(from_torch, rows, k), truth)),
        ("scikit-learn brute force (cosine)", fit_time, sk_time * args.count / len(sk_rows),
         recall_at_k(without_self(sk_found, sk_rows, k), sk_truth)),
    ]
    reference = results[0][1] + results[0][2]
    print(f"{'method':<42} {'build s':>8} {'search s':>9} {'total s':>8} {'x faiss exact':>14} {'recall@' + str(k):>10}")
    for name, build, search, recall in results:
        print(f"{name:<42} {build:8.1f} {search:9.1f} {build + search:8.1f} {reference / (build + search):14.2f} "
              f"{recall:10.4f}")
    print("# x faiss exact: faiss exact's total time / the method's (above 1: faster); search times for all "
          f"{args.count:,} queries, scaled from the timed subset")


if __name__ == "__main__":
    main()
