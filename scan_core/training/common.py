"""What every training loop shares: seeding, batching, inference and loss checks."""

from __future__ import annotations

import math
import random
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scan_core.augment import AugmentSettings, normalize, to_float

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


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@torch.no_grad()
def predict_probabilities(
    model: nn.Module, images: Tensor, augment: AugmentSettings, batch_size: int, device: torch.device
) -> Tensor:
    """Softmax of every head on un-augmented images: ``[num_heads, N, num_clusters]``."""
    model.eval()
    outputs = [
        F.softmax(model(normalize(to_float(images[start : start + batch_size]).to(device), augment)), dim=-1).cpu()
        for start in range(0, len(images), batch_size)
    ]
    return torch.cat(outputs, dim=1)


@torch.no_grad()
def compute_features(
    model: nn.Module, images: Tensor, augment: AugmentSettings, batch_size: int, device: torch.device
) -> Tensor:
    model.eval()
    outputs = [
        model(normalize(to_float(images[start : start + batch_size]).to(device), augment)).cpu()
        for start in range(0, len(images), batch_size)
    ]
    return torch.cat(outputs)


def cosine_lr(base_lr: float, epoch: int, epochs: int, final_fraction: float = 0.01) -> float:
    """Cosine decay from ``base_lr`` to ``final_fraction * base_lr`` over ``epochs``."""
    final = base_lr * final_fraction
    return final + 0.5 * (base_lr - final) * (1 + math.cos(math.pi * epoch / max(epochs, 1)))
