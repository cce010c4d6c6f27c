"""Run scan_core's tests on one intra-op thread.

The models here are tiny: on a small, shared CPU, oneDNN's thread pool spends far more
time synchronising than computing (a ResNet-50 forward pass on two 32 px images takes
~1 s with 2 threads under load, ~0.1 s with one). The previous setting is restored after.
"""

from __future__ import annotations

from typing import Iterator

import pytest
import torch


@pytest.fixture(scope="package", autouse=True)
def single_torch_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
