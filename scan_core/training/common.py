"""What every training loop shares: seeding, batching, device placement, inference and loss
checks."""

from __future__ import annotations

import logging
import math
import random
from contextlib import nullcontext
from typing import Any, Callable, ContextManager, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scan_core.augment.settings import AugmentSettings, normalize, to_float
from scan_core.checkpoint import TrainingCheckpoint
from scan_core.collectives import Group
from scan_core.devices import to_device
from scan_core.training.prefetch import prefetched, read_rows

logger = logging.getLogger(__name__)

EpochCallback = Callable[[int, dict[str, float]], None]

# uint8 ``[N, H, W, C]`` images: a tensor, a numpy array or memmap, or any store whose ``[]``
# takes an integer array (``scan_core.training.prefetch.read_rows``); never read whole.
Images = Any

# Batches prepared ahead of the model (``prefetched``); results do not depend on it.
PREFETCH_DEPTH = 2


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite; the message says where and what usually helps."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A generator fixed by (seed, epoch): a resumed run draws the same batches and views."""
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


def index_batches(count: int, batch_size: int, generator: torch.Generator, drop_last: bool) -> Iterator[Tensor]:
    """Shuffled index batches; the last short batch is dropped when ``drop_last`` and
    there is at least one full batch."""
    order = torch.randperm(count, generator=generator)
    stop = count - count % batch_size if drop_last and count >= batch_size else count
    for start in range(0, stop, batch_size):
        yield order[start : start + batch_size]


def epoch_batches(count: int, batch_size: int, generator: torch.Generator, drop_last: bool,
                  produce: Callable[[Tensor], Tensor], group: Group) -> Iterator[Tensor]:
    """The epoch's batches on the device, prepared ahead in draw order.

    ``produce(rows)`` makes every random draw of a step for the *global* batch ``rows`` and
    returns its inputs (rows first; a tensor or a tuple of them); each process keeps its own rows of them
    (``Group.shard``). Every process thus draws what a single process would, whatever the
    process count, at the price of building the whole batch's views on each. A last batch
    with fewer rows than processes is skipped (only possible without ``drop_last``).
    """
    batches = (rows for rows in index_batches(count, batch_size, generator, drop_last) if len(rows) >= group.world)
    return prefetched(batches, lambda rows: _shard(group, produce(rows)), depth=PREFETCH_DEPTH)


def _shard(group: Group, produced: Tensor | tuple[Tensor, ...]) -> Tensor | tuple[Tensor, ...]:
    """This process's rows of what ``produce`` made: one tensor, or each of a tuple of them."""
    return tuple(group.shard(part) for part in produced) if isinstance(produced, tuple) else group.shard(produced)


def check_finite(loss: Tensor, stage: str, epoch: int, step: int) -> None:
    if not torch.isfinite(loss):
        raise NonFiniteLossError(
            f"{stage}: the loss became {loss.item()} at epoch {epoch}, step {step}. "
            f"Usual fixes: lower {stage}.lr, raise {stage}.batch_size, or check the input "
            f"images; the last good checkpoint is kept."
        )


def autocast(device: torch.device) -> ContextManager:
    """bf16 autocast on CUDA (forward passes; losses are computed in float32 outside it),
    nothing on other devices, whose results stay bit-for-bit as they were."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()


def place(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` on ``device``, in channels_last memory format on CUDA (faster convolutions)."""
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if device.type == "cuda" else model


def as_input(images: Tensor) -> Tensor:
    """A float batch laid out for the model: channels_last on CUDA."""
    return images.contiguous(memory_format=torch.channels_last) if images.is_cuda and images.dim() == 4 else images


def load_floats(images: object, rows: np.ndarray | Tensor, device: torch.device) -> Tensor:
    """Rows ``rows`` of a uint8 image store as float ``[B, C, H, W]`` in [0, 1] on ``device``
    (read on the CPU, copied as uint8, converted on the device)."""
    return to_float(to_device(read_rows(images, rows), device))


@torch.no_grad()
def _outputs(model: nn.Module, images: Images, augment: AugmentSettings, batch_size: int,
             device: torch.device, batch_dim: int) -> Tensor:
    """Model outputs on the plain images, read slice by slice (any store ``read_rows`` takes),
    the next slice read while the model runs on this one."""
    model.eval()
    count = len(images)

    def produce(start: int) -> Tensor:
        rows = np.arange(start, min(start + batch_size, count))
        return as_input(normalize(load_floats(images, rows, device), augment))

    return torch.cat([model(batch).float().cpu() for batch in prefetched(range(0, count, batch_size), produce)],
                     dim=batch_dim)


def predict_probabilities(
    model: nn.Module, images: Images, augment: AugmentSettings, batch_size: int, device: torch.device
) -> Tensor:
    """Softmax of every head on un-augmented images: ``[num_heads, N, num_clusters]``."""
    return F.softmax(_outputs(model, images, augment, batch_size, device, batch_dim=1), dim=-1)


def compute_features(
    model: nn.Module, images: Images, augment: AugmentSettings, batch_size: int, device: torch.device
) -> Tensor:
    """Model outputs ``[N, dim]`` on un-augmented images."""
    return _outputs(model, images, augment, batch_size, device, batch_dim=0)


def resume(checkpoint: TrainingCheckpoint, model: nn.Module, optimizer: torch.optim.Optimizer,
           stage: str) -> tuple[list[dict[str, float]], int, dict | None]:
    """Restore model and optimiser from a checkpoint of the same run, if there is one.

    Returns the history so far, the epoch to start from, and the raw state (for extras).
    """
    state = checkpoint.load()
    if state is None:
        return [], 0, None
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    logger.info("%s: resuming after epoch %d", stage, state["epoch"] + 1)
    return state["history"], state["epoch"] + 1, state


def cosine_lr(base_lr: float, epoch: int, epochs: int, final_fraction: float = 0.01) -> float:
    """Cosine decay from ``base_lr`` to ``final_fraction * base_lr`` over ``epochs``."""
    final = base_lr * final_fraction
    return final + 0.5 * (base_lr - final) * (1 + math.cos(math.pi * epoch / max(epochs, 1)))
