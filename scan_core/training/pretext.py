"""SimCLR pretext training: make features invariant to augmentations (paper Eq. 1)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm.auto import tqdm

from scan_core.augment.settings import AugmentSettings, to_float
from scan_core.augment.simclr import simclr_view
from scan_core.checkpoint import TrainingCheckpoint
from scan_core.losses.contrastive import simclr_loss
from scan_core.models import ContrastiveModel, build_backbone
from scan_core.training.common import (
    EpochCallback,
    check_finite,
    cosine_lr,
    epoch_generator,
    index_batches,
    resume,
    seed_everything,
)


@dataclass(frozen=True)
class PretextSettings:
    backbone: str = "resnet18_cifar"
    epochs: int = 500
    batch_size: int = 512
    lr: float = 0.4
    weight_decay: float = 1e-4
    temperature: float = 0.1
    projection_dim: int = 128
    seed: int = 0


def train_pretext(
    images: Tensor,
    settings: PretextSettings,
    augment: AugmentSettings,
    checkpoint: TrainingCheckpoint,
    device: torch.device,
    on_epoch: EpochCallback | None = None,
    progress: bool = True,
) -> tuple[ContrastiveModel, list[dict[str, float]]]:
    """Train backbone + projection head with SGD, cosine schedule, one checkpoint per epoch.

    ``images`` is the stored uint8 ``[N, H, W, C]`` tensor. Resumes from ``checkpoint``
    when it holds a state written under the same key.
    """
    seed_everything(settings.seed)
    model = ContrastiveModel(build_backbone(settings.backbone, images.shape[-1]), settings.projection_dim).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=0.9, weight_decay=settings.weight_decay)
    history, start_epoch, state = resume(checkpoint, model, optimizer, "pretext")
    if state is not None:
        torch.set_rng_state(state["torch_rng"])
    batch_size = min(settings.batch_size, len(images))
    epochs = tqdm(range(start_epoch, settings.epochs), desc="pretext", disable=not progress,
                  initial=start_epoch, total=settings.epochs)
    for epoch in epochs:
        model.train()
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(settings.lr, epoch, settings.epochs)
        generator = epoch_generator(settings.seed, epoch)
        total, steps = 0.0, 0
        for step, batch in enumerate(index_batches(len(images), batch_size, generator, drop_last=True)):
            originals = to_float(images[batch])
            views = torch.cat([simclr_view(originals, augment, generator), simclr_view(originals, augment, generator)])
            projections = model(views.to(device))
            loss = simclr_loss(torch.stack(projections.chunk(2), dim=1), settings.temperature)
            check_finite(loss, "pretext", epoch + 1, step + 1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, steps = total + loss.item(), steps + 1
        record = {"epoch": epoch + 1, "loss": total / steps}
        history.append(record)
        checkpoint.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                         "history": history, "torch_rng": torch.get_rng_state()})
        epochs.set_postfix(loss=f"{record['loss']:.3f}")
        if on_epoch:
            on_epoch(epoch + 1, record)
    return model, history
