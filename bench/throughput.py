"""Benchmark 1 of issue 11: training throughput with the real data pipeline against the
model's forward and backward alone, on the same batches.

Real pipeline (the training loops' own functions): uint8 images in a ``.npy`` file on disk
opened with ``np.load(mmap_mode="r")``; each batch made by ``epoch_batches`` (``prefetched``
at the loops' depth, 2: a background thread preparing batches ahead), which calls
``pretext_views`` (two SimCLR views per image) or ``scan_views`` (a strong view of each
anchor and of one of its mined neighbours): rows read with ``read_rows``, copied with
``to_device``, converted and augmented on the device; then ``pretext_step`` or
``scan_step`` (forward, loss), backward and the optimizer's step. Baseline: the same steps on the same views, already made and
held in memory. The ratio (pipeline images/s over baseline images/s) is the share of the
model's own speed that training with the data pipeline keeps.

    python bench/throughput.py [--backbones resnet18_cifar,small_cnn] [--images 4096]
        [--batch-size 128] [--steps 4] [--rounds 2] [--device cpu]

Each round times the baseline and the pipeline (each after one untimed warm-up step), in
alternating order so that a machine whose load drifts during the run affects both alike;
the totals over all rounds give the ratio. ``augment ms`` is the time to read and augment
one batch in the main thread with nothing else running in the process. The header shows the
load average (other processes share the CPU) and ``OMP_WAIT_POLICY``: with OpenMP's default
(spinning) wait, two threads that each run parallel regions on a small, busy CPU wait for
each other's time slices.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scan_core.augment.settings import AugmentSettings  # noqa: E402
from scan_core.augment.strong import strong_view  # noqa: E402
from scan_core.collectives import SINGLE  # noqa: E402
from scan_core.models import ClusteringModel, ContrastiveModel, build_backbone  # noqa: E402
from scan_core.training.clustering import scan_step, scan_views  # noqa: E402
from scan_core.training.common import PREFETCH_DEPTH, epoch_batches, index_batches, place  # noqa: E402
from scan_core.training.pretext import pretext_step, pretext_views  # noqa: E402

CIFAR_AUGMENT = AugmentSettings(mean=(0.491, 0.482, 0.447), std=(0.247, 0.243, 0.262))
NEIGHBORS = 20  # mined neighbours per image (SCAN's default)
CLUSTERS = 10


def write_images(path: Path, count: int, size: int, seed: int) -> None:
    """CIFAR-like uint8 ``[N, size, size, 3]``: smooth random colour fields plus pixel noise
    (so crops, jitter and histogram operations see varied content), written chunk by chunk
    into a memmap, as ``prepare`` writes ``images.npy``."""
    rng = np.random.default_rng(seed)
    stored = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(count, size, size, 3))
    for start in range(0, count, 1024):
        rows = min(1024, count - start)
        coarse = torch.from_numpy(rng.random((rows, 3, 4, 4), dtype=np.float32))
        smooth = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
        noise = torch.from_numpy(rng.standard_normal((rows, 3, size, size), dtype=np.float32))
        pixels = (smooth + 0.08 * noise).clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)
        stored[start : start + rows] = pixels.permute(0, 2, 3, 1).numpy()
    stored.flush()
    del stored


@dataclass
class Workload:
    """One training stage's step, as its loop runs it: the views of a batch of rows (every
    draw from the generator) and the loss of one step on them."""

    name: str
    model: nn.Module
    optimizer: torch.optim.Optimizer
    views: Callable[[Tensor, torch.Generator], Tensor]
    loss: Callable[[Tensor], Tensor]


def pretext_workload(store: np.ndarray, backbone: str, device: torch.device) -> Workload:
    """SimCLR pretext: two views of every image, NT-Xent, SGD (``train_pretext``'s step)."""
    model = place(ContrastiveModel(build_backbone(backbone, 3)), device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.4, momentum=0.9, weight_decay=1e-4)
    return Workload("pretext (2 SimCLR views)", model, optimizer,
                    lambda rows, generator: pretext_views(store, rows, CIFAR_AUGMENT, generator, device),
                    lambda views: pretext_step(model, views, 0.1))


def scan_workload(store: np.ndarray, backbone: str, device: torch.device, seed: int) -> Workload:
    """SCAN: a strong view of each anchor and of one mined neighbour, SCAN loss, Adam
    (``train_scan``'s step with ``augmentation: strong``). The neighbour table is random:
    which rows are read does not change the cost."""
    model = place(ClusteringModel(build_backbone(backbone, 3), CLUSTERS), device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-4)
    neighbors = torch.randint(0, len(store), (len(store), NEIGHBORS), generator=torch.Generator().manual_seed(seed))
    return Workload("scan (strong anchor + neighbour)", model, optimizer,
                    lambda rows, generator: scan_views(store, neighbors, rows, strong_view, CIFAR_AUGMENT, generator,
                                                       device),
                    lambda views: scan_step(model, views, 5.0)[0])


def train_step(work: Workload, views: Tensor) -> float:
    loss = work.loss(views)
    work.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    work.optimizer.step()
    return loss.item()  # the loops read every step's loss (a device sync on CUDA)


@dataclass
class Timing:
    baseline: float = 0.0
    pipeline: float = 0.0
    augment: float = 0.0
    images: int = 0


def time_baseline(work: Workload, count: int, batch_size: int, steps: int, seed: int, timing: Timing) -> None:
    """The steps alone, on views made beforehand and held in memory (one untimed warm-up)."""
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    made = [work.views(rows, generator) for rows in islice(index_batches(count, batch_size, generator, True), steps + 1)]
    timing.augment += (time.perf_counter() - start) / (steps + 1)
    train_step(work, made[0])
    start = time.perf_counter()
    for views in made[1:]:
        train_step(work, views)
    timing.baseline += time.perf_counter() - start


def time_pipeline(work: Workload, count: int, batch_size: int, steps: int, seed: int, timing: Timing) -> None:
    """The loops' pipeline: the same seed draws the same rows and views as ``time_baseline``."""
    generator = torch.Generator().manual_seed(seed)
    pipeline = epoch_batches(count, batch_size, generator, True, lambda rows: work.views(rows, generator), SINGLE)
    train_step(work, next(pipeline))  # untimed warm-up; the prefetch thread is running from here
    start = time.perf_counter()
    for views in islice(pipeline, steps):  # meanwhile the thread prepares the next ones
        train_step(work, views)
    timing.pipeline += time.perf_counter() - start
    pipeline.close()  # stops the prefetch thread


def measure(work: Workload, count: int, batch_size: int, steps: int, rounds: int, seed: int) -> Timing:
    """Baseline and pipeline ``rounds`` times, in alternating order (so a machine whose load
    drifts affects both alike), each round on its own ``steps`` batches."""
    timing = Timing()
    work.model.train()
    for round_index in range(rounds):
        phases = [time_baseline, time_pipeline][:: 1 if round_index % 2 == 0 else -1]
        for phase in phases:
            phase(work, count, batch_size, steps, seed + round_index, timing)
        timing.images += steps * batch_size
    timing.augment /= rounds
    return timing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbones", default="resnet18_cifar,small_cnn", help="comma-separated")
    parser.add_argument("--images", type=int, default=4096)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per round and phase")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workloads", default="pretext,scan", help="comma-separated: pretext, scan")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.images < (args.steps + 1) * args.batch_size:
        parser.error("--images must hold (steps + 1) batches")
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    print(f"# {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, torch {torch.__version__}, "
          f"{platform.processor() or platform.machine()}, device {device}, {torch.get_num_threads()} intra-op threads, "
          f"prefetch depth {PREFETCH_DEPTH}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}, "
          f"load average {_load()}")
    print(f"# {args.images} images {args.size}x{args.size}x3 uint8 read from a .npy memmap; batch {args.batch_size} "
          f"images, {args.steps} timed steps x {args.rounds} rounds per phase")
    header = f"{'backbone':16} {'workload':34} {'baseline img/s':>14} {'pipeline img/s':>14} {'ratio':>6} {'augment ms':>10}"
    print(header)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "images.npy"
        write_images(path, args.images, args.size, args.seed)
        store = np.load(path, mmap_mode="r")
        for backbone in args.backbones.split(","):
            for name in args.workloads.split(","):
                work = (pretext_workload(store, backbone, device) if name == "pretext"
                        else scan_workload(store, backbone, device, args.seed))
                timing = measure(work, args.images, args.batch_size, args.steps, args.rounds, args.seed)
                baseline, pipeline = timing.images / timing.baseline, timing.images / timing.pipeline
                print(f"{backbone:16} {work.name:34} {baseline:14.1f} {pipeline:14.1f} {pipeline / baseline:6.3f} "
                      f"{timing.augment * 1000:10.1f}", flush=True)
    print(f"# load average at the end {_load()}")


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


if __name__ == "__main__":
    main()
