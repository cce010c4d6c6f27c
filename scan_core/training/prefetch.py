"""Getting batches to the model without making it wait: rows read from any image store and
prepared one or two batches ahead in a background thread (moved to the device through pinned
memory by ``scan_core.devices.to_device``).

Every random draw of a batch happens inside ``produce``, which runs on one thread in batch
order, so a run prefetched to any depth draws exactly what an unprefetched run draws.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Iterable, Iterator, TypeVar

import numpy as np
import torch
from torch import Tensor

Batch = TypeVar("Batch")
Prepared = TypeVar("Prepared")

_DONE = object()


def read_rows(images: object, rows: np.ndarray | Tensor) -> Tensor:
    """The uint8 ``[B, H, W, C]`` rows ``rows`` of ``images`` as a CPU tensor.

    ``images`` is a uint8 tensor, a numpy array or memmap, or any store whose ``[]`` takes an
    integer array and returns one (``scan_core.data`` readers that read from disk on demand).
    """
    if isinstance(images, Tensor):
        return images[torch.as_tensor(rows, dtype=torch.long)]
    index = rows.numpy() if isinstance(rows, Tensor) else np.asarray(rows)
    return torch.from_numpy(np.ascontiguousarray(images[index]))


def prefetched(batches: Iterable[Batch], produce: Callable[[Batch], Prepared], depth: int = 2) -> Iterator[Prepared]:
    """``produce(batch)`` for every batch, in order, computed up to ``depth`` batches ahead
    in a background thread. An error in ``produce`` is raised here; leaving the loop early
    stops the thread."""
    if depth <= 0:
        yield from map(produce, batches)
        return
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(entry: tuple) -> bool:
        """Queue ``entry`` unless the consumer has left; True when queued."""
        while not stop.is_set():
            try:
                ready.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for batch in batches:
                if stop.is_set() or not offer((produce(batch), None)):
                    return
        except BaseException as error:  # handed to the consumer, which re-raises it
            offer((None, error))
            return
        offer((_DONE, None))

    worker = threading.Thread(target=work, name="scan-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item, error = ready.get()
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        worker.join()
