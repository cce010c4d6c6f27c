"""Training in several processes on one machine: the processes are started with torchrun's
engine (``torch.distributed.launcher``) from inside the calling process, each trains a
DistributedDataParallel copy of the model on its slice of every global batch, and the main
process's result comes back to the caller.

Why from inside: a pipeline stage stays one process (one Prefect task, one DVC command) and
``SCAN_DEVICES`` only changes how it computes, not what it computes.
"""

from __future__ import annotations

import copy
import ctypes
import io
import json
import logging
import os
import signal
import socket
import sys
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.launcher.api import LaunchConfig, elastic_launch
from torch.nn.parallel import DistributedDataParallel

from scan_core.collectives import Group, global_batchnorm
from scan_core.training.common import EpochCallback


def backend_for(device: torch.device) -> str:
    """NCCL between GPUs, gloo between CPU processes."""
    return "nccl" if device.type == "cuda" else "gloo"


def describe(stage: str, processes: int, device: torch.device) -> str:
    """The line a training stage logs at its start, e.g. ``pretext: 2 processes, gloo``."""
    return f"{stage}: 1 process" if processes <= 1 else f"{stage}: {processes} processes, {backend_for(device)}"


def parallel(model: nn.Module, group: Group, device: torch.device) -> nn.Module:
    """What a training step calls: ``model`` itself in one process; in several, ``model`` with
    its BatchNorms over the global batch (changed in place, parameters and buffers kept) inside
    DistributedDataParallel, which averages the gradients. Keep the wrapper referenced until
    after ``backward``: a wrapper already collected averages nothing."""
    if group.world == 1:
        return model
    if device.type == "cuda":
        for name, child in list(model.named_children()):
            model.add_module(name, nn.SyncBatchNorm.convert_sync_batchnorm(child))
    else:
        for name, child in list(model.named_children()):
            model.add_module(name, global_batchnorm(child, group))
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside DistributedDataParallel (for passes without gradient)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


class EpochRelay:
    """Hands the main process's epoch records to the caller's ``on_epoch`` (which may hold a
    logger or a Prefect context that cannot travel): one JSON line per epoch in a file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.delivered = 0

    def __call__(self, epoch: int, record: dict[str, float]) -> None:
        with open(self.path, "a") as handle:
            handle.write(json.dumps({"epoch": epoch, "record": record}) + "\n")

    def deliver(self, on_epoch: EpochCallback) -> None:
        """Call ``on_epoch`` for every whole line written since the last call."""
        if not self.path.exists():
            return
        lines = self.path.read_text().split("\n")[:-1]  # the last piece is unfinished or empty
        for line in lines[self.delivered:]:
            entry = json.loads(line)
            on_epoch(entry["epoch"], entry["record"])
        self.delivered = len(lines)


class _NoSignalNote(logging.Filter):
    """The launcher runs off the main thread, where it cannot install signal handlers, and says
    so at every launch; the training processes end with this one anyway (``_die_with_parent``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Failed to register signal handlers" not in record.getMessage()


logging.getLogger("torch.distributed.elastic.multiprocessing.api").addFilter(_NoSignalNote())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _die_with_parent() -> None:
    """Ask Linux to end this process when the process that started it ends, killed or not
    (the launcher cannot install its own signal handlers outside the main thread)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG


def _process(function: Callable[..., Any], device_type: str, relay: EpochRelay | None, args: tuple) -> Any:
    """One training process: join the group, train, leave."""
    _die_with_parent()
    rank, world, local_rank = (int(os.environ[name]) for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    if device_type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device(device_type)
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    dist.init_process_group(backend_for(device), rank=rank, world_size=world)
    # Spawning pickles CPU tensors into shared memory: a model handed over as an argument would
    # be one set of weights that every process's optimiser steps (world steps per batch).
    args = tuple(copy.deepcopy(arg) if isinstance(arg, nn.Module) else arg for arg in args)
    try:
        return function(Group(rank, world), device, relay if rank == 0 else None, *args)
    finally:
        dist.destroy_process_group()


def launch(function: Callable[..., Any], processes: int, device: torch.device,
           on_epoch: EpochCallback | None, *args: Any) -> Any:
    """``function(group, device, on_epoch, *args)`` in ``processes`` processes (torchrun's
    engine, spawned, on this machine); returns the main process's result.

    Everything in ``args`` is pickled into each process: pass images as a store that pickles
    as its path (``scan_core.data.image_store``), not as all pixels. Each process computes on
    ``cuda:<local rank>`` when ``device`` is CUDA, else on ``device``. ``on_epoch`` is called
    here, in this process and thread, with the main process's records as they come.
    """
    with tempfile.TemporaryDirectory(prefix="scan-ddp-") as folder:
        relay = EpochRelay(Path(folder) / "epochs.jsonl")
        config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=processes, rdzv_backend="c10d",
                              rdzv_endpoint=f"127.0.0.1:{_free_port()}", run_id=f"scan-{uuid.uuid4().hex[:8]}",
                              max_restarts=0, start_method="spawn", monitor_interval=0.1)
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["results"] = elastic_launch(config, _process)(function, device.type, relay, args)
            except BaseException as error:  # re-raised in the caller's thread
                outcome["error"] = error

        # On another thread so that the records reach on_epoch while the processes train.
        runner = threading.Thread(target=run, name="scan-launch", daemon=True)
        runner.start()
        callback_error: BaseException | None = None
        while runner.is_alive():
            runner.join(timeout=0.5)
            if on_epoch is not None and callback_error is None:
                try:
                    relay.deliver(on_epoch)
                except Exception as error:  # the processes finish their run; the error is raised after
                    callback_error = error
        if "error" in outcome:
            raise outcome["error"]
        if callback_error is not None:
            raise callback_error
        return outcome["results"][0]


def portable_state(model: nn.Module) -> bytes:
    """``model``'s weights as bytes, to return from a training process (plain bytes travel
    back reliably, shared-memory tensors may not outlive the process)."""
    buffer = io.BytesIO()
    torch.save({name: value.detach().cpu() for name, value in model.state_dict().items()}, buffer)
    return buffer.getvalue()


def restore_state(model: nn.Module, state: bytes) -> nn.Module:
    """Load weights written by ``portable_state``."""
    model.load_state_dict(torch.load(io.BytesIO(state), map_location="cpu", weights_only=True))
    return model
