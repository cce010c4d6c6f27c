"""The device a stage computes on, and how many processes train."""

from __future__ import annotations

import os

import torch

from scan_core.devices import resolve_device


def device() -> torch.device:
    """``SCAN_DEVICE`` (cpu, cuda, cuda:1...) or the GPU when there is one; not a param, so
    moving a run to another machine does not invalidate its cache."""
    return resolve_device(os.environ.get("SCAN_DEVICE", "auto"))


def processes() -> int:
    """``SCAN_DEVICES``: how many processes train pretext, scan and selflabel (default 1; on
    CUDA process i uses ``cuda:i``). Like ``SCAN_DEVICE`` not a param: the results are the same
    for any count up to rounding (the global batch is the params' batch size), so caches stay valid."""
    value = os.environ.get("SCAN_DEVICES", "1").strip()
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"SCAN_DEVICES must be a whole number of processes, 1 or more; got {value!r}")
    count = int(value)
    if count > 1 and device().type == "cuda" and count > torch.cuda.device_count():
        raise ValueError(f"SCAN_DEVICES={count} but this machine has {torch.cuda.device_count()} GPU(s)")
    return count
