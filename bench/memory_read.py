"""Why stages read images.npy through ``ImageStore`` and not a plain memmap: one epoch of
shuffled batches read each way, each in a fresh process, with its peak resident size.
Every page a memmap touches stays mapped (and counted in RSS) until unmapped, so over an
epoch its RSS grows to the whole file; the store's ``preadv`` reads leave them in the page
cache only.

    python bench/memory_read.py IMAGES_NPY [--batch 256]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def read_epoch(path: Path, mode: str, batch: int) -> str:
    """Read every row once in shuffled batches; a line with the time and this process's peak RSS."""
    sys.path.insert(0, str(ROOT))
    from scan_core.data.image_store import ImageStore

    images = np.load(path, mmap_mode="r") if mode == "memmap" else ImageStore(path)
    order = np.random.default_rng(0).permutation(len(images))
    started = time.perf_counter()
    for start in range(0, len(order), batch):
        rows = order[start : start + batch]
        # numpy's fancy indexing of a memmap reads rows in the order given; sorted is its best case
        np.ascontiguousarray(images[np.sort(rows)] if mode == "memmap" else images[rows])
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return f"| {mode} | {seconds:.1f} | {peak:.0f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", type=Path)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--mode", choices=["memmap", "store"], help=argparse.SUPPRESS)  # one side, in a child
    args = parser.parse_args()
    if args.mode:
        print(read_epoch(args.images, args.mode, args.batch))
        return
    size_mb = args.images.stat().st_size / 2**20
    print(f"One epoch of {args.images} ({size_mb:.0f} MB) in shuffled batches of {args.batch}, one fresh process each:")
    print("\n| read through | seconds | peak RSS (MB) |\n|---|---|---|")
    for mode in ("memmap", "store"):
        subprocess.run([sys.executable, __file__, str(args.images), "--batch", str(args.batch), "--mode", mode],
                       check=True)


if __name__ == "__main__":
    main()
