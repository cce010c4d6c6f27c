"""What every training loop shares: seeding, batching, inference and loss checks."""

from __future__ import annotations

import logging
import math
import random
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scan_core.augment.settings import AugmentSettings, normalize, to_float
from scan_core.checkpoint import TrainingCheckpoint

logger = logging.getLogger(__name__)

EpochCallback = Callable[[int, dict[str, float]], None]


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


def check_finite(loss: Tensor, stage: str, epoch: int, step: int) -> None:
    if not torch.isfinite(loss):
        raise NonFiniteLossError(
            f"{stage}: the loss became {loss.item()} at epoch {epoch}, step {step}. "
            f"Usual fixes: lower {stage}.lr, raise {stage}.batch_size, or check the input "
            f"images; the last good checkpoint is kept."
        )


@torch.no_grad()
def _outputs(model: nn.Module, images: Tensor, augment: AugmentSettings, batch_size: int,
             device: torch.device, batch_dim: int) -> Tensor:
    model.eval()
    return torch.cat([
        model(normalize(to_float(images[start : start + batch_size]).to(device), augment)).cpu()
        for start in range(0, len(images), batch_size)
    ], dim=batch_dim)


def predict_probabilities(
    model: nn.Module, images: Tensor, augment: AugmentSettings, batch_size: int, device: torch.device
) -> Tensor:
    """Softmax of every head on un-augmented images: ``[num_heads, N, num_clusters]``."""
    return F.softmax(_outputs(model, images, augment, batch_size, device, batch_dim=1), dim=-1)


def compute_features(
    model: nn.Module, images: Tensor, augment: AugmentSettings, batch_size: int, device: torch.device
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
