"""The prefetcher yields what a plain loop would, in order, and passes errors on."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from scan_core.devices import to_device
from scan_core.training.prefetch import prefetched, read_rows


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_prefetched_draws_exactly_what_a_plain_loop_draws(depth):
    def produce(generator_seed_and_rows):
        generator, rows = generator_seed_and_rows
        return rows + torch.rand(len(rows), generator=generator)

    def batches(generator):
        return [(generator, torch.arange(start, start + 4).float()) for start in range(0, 40, 4)]

    plain = [produce(batch) for batch in batches(torch.Generator().manual_seed(3))]
    ahead = list(prefetched(batches(torch.Generator().manual_seed(3)), produce, depth=depth))
    assert all(torch.equal(a, b) for a, b in zip(plain, ahead)) and len(ahead) == 10


def test_an_error_in_produce_reaches_the_loop():
    def produce(batch):
        if batch == 2:
            raise ValueError("bad batch 2")
        return batch

    seen = []
    with pytest.raises(ValueError, match="bad batch 2"):
        for item in prefetched(range(5), produce):
            seen.append(item)
    assert seen == [0, 1]


def test_leaving_early_stops_the_thread():
    before = threading.active_count()
    loop = prefetched(range(1000), lambda batch: batch, depth=2)
    assert next(loop) == 0
    loop.close()
    assert threading.active_count() == before


def test_read_rows_takes_tensors_arrays_and_memmaps(tmp_path):
    pixels = np.arange(5 * 2 * 2 * 1, dtype=np.uint8).reshape(5, 2, 2, 1)
    np.save(tmp_path / "images.npy", pixels)
    mapped = np.load(tmp_path / "images.npy", mmap_mode="r")
    rows = np.array([4, 0, 2])
    for store in (torch.from_numpy(pixels), pixels, mapped):
        got = read_rows(store, torch.as_tensor(rows))
        assert got.dtype == torch.uint8 and torch.equal(got, torch.from_numpy(pixels[rows]))
    assert to_device(read_rows(pixels, rows), torch.device("cpu")).device.type == "cpu"
