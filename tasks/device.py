"""The device a stage computes on."""

from __future__ import annotations

import os

import torch

from scan_core.devices import resolve_device


def device() -> torch.device:
    """``SCAN_DEVICE`` (cpu, cuda, cuda:1...) or the GPU when there is one; not a param, so
    moving a run to another machine does not invalidate its cache."""
    return resolve_device(os.environ.get("SCAN_DEVICE", "auto"))
