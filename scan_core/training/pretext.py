"""SimCLR pretext training: make features invariant to augmentations (paper Eq. 1)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from scan_core.augment.settings import AugmentSettings
from scan_core.augment.simclr import simclr_view
from scan_core.checkpoint import TrainingCheckpoint
from scan_core.collectives import SINGLE, Group
from scan_core.defaults import PARAM_DEFAULTS
from scan_core.losses.contrastive import simclr_loss
from scan_core.models import ContrastiveModel, build_backbone
from scan_core.recipes import DEFAULT_RECIPE, RECIPES
from scan_core.training.common import (
    EpochCallback,
    Images,
    as_input,
    autocast,
    check_finite,
    cosine_lr,
    epoch_batches,
    epoch_generator,
    load_floats,
    place,
    resume,
    seed_everything,
)
from scan_core.training.multiprocess import launch, parallel, portable_state, restore_state


_PARAMS = PARAM_DEFAULTS["pretext"]


@dataclass(frozen=True)
class PretextSettings:
    """One SimCLR run. Defaults are params.yaml's (``scan_core.defaults.PARAM_DEFAULTS``);
    for the keys params.yaml leaves ``auto``, which the pipeline resolves from the images
    (``scan_core.defaults.resolve_stage``, ``scan_core.recipes``), concrete stand-ins:
    ``backbone`` the ``small_grayscale`` recipe's, ``epochs`` and ``batch_size`` the paper's.
    SimCLR's settings only: params.yaml's ``pretext.method: pretrained`` and ``pretext.weights``
    mean no training at all (``scan_core.pretrained``, ``scan_core.foundation``)."""

    backbone: str = RECIPES[DEFAULT_RECIPE].backbone
    epochs: int = 500
    batch_size: int = 512
    lr: float = _PARAMS["lr"]
    weight_decay: float = _PARAMS["weight_decay"]
    temperature: float = _PARAMS["temperature"]
    projection_dim: int = _PARAMS["projection_dim"]
    seed: int = _PARAMS["seed"]


def pretext_views(images: Images, rows: Tensor, augment: AugmentSettings, generator: torch.Generator,
                  device: torch.device) -> Tensor:
    """Two SimCLR views of each image ``rows``, ``[B, 2, C, H, W]`` on ``device``; every
    parameter is drawn from ``generator``."""
    originals = load_floats(images, rows, device)
    return torch.stack([simclr_view(originals, augment, generator), simclr_view(originals, augment, generator)], dim=1)


def pretext_step(model: nn.Module, views: Tensor, temperature: float, group: Group = SINGLE) -> Tensor:
    """The loss of one step on ``views`` ``[b, 2, C, H, W]`` (this process's rows): NT-Xent
    of the projections, in float32, against the views of the whole global batch."""
    with autocast(views.device):
        projections = model(as_input(views.transpose(0, 1).flatten(0, 1)))
    return simclr_loss(torch.stack(projections.float().chunk(2), dim=1), temperature, group)


def _model(settings: PretextSettings, channels: int) -> ContrastiveModel:
    return ContrastiveModel(build_backbone(settings.backbone, channels), settings.projection_dim)


def train_pretext(
    images: Images,
    settings: PretextSettings,
    augment: AugmentSettings,
    checkpoint: TrainingCheckpoint,
    device: torch.device,
    on_epoch: EpochCallback | None = None,
    progress: bool = True,
    processes: int = 1,
) -> tuple[ContrastiveModel, list[dict[str, float]]]:
    """Train backbone + projection head with SGD, cosine schedule, one checkpoint per epoch.

    ``images`` is the stored uint8 ``[N, H, W, C]`` store (``common.Images``). Resumes from
    ``checkpoint`` when it holds a state written under the same key. With ``processes`` > 1
    the training runs in that many processes (``scan_core.training.multiprocess``) on the same
    global batches and draws; ``images`` must then pickle cheaply.
    """
    if processes > 1:
        state, history = launch(_pretext_process, processes, device, on_epoch, images, settings, augment,
                                checkpoint, progress)
        return restore_state(_model(settings, images.shape[-1]), state).to(device), history
    return _train(images, settings, augment, checkpoint, device, on_epoch, progress, SINGLE)


def _pretext_process(group: Group, device: torch.device, on_epoch: EpochCallback | None, images: Images,
                     settings: PretextSettings, augment: AugmentSettings, checkpoint: TrainingCheckpoint,
                     progress: bool) -> tuple[bytes, list[dict[str, float]]] | None:
    model, history = _train(images, settings, augment, checkpoint, device, on_epoch, progress, group)
    return (portable_state(model), history) if group.main else None


def _train(images: Images, settings: PretextSettings, augment: AugmentSettings, checkpoint: TrainingCheckpoint,
           device: torch.device, on_epoch: EpochCallback | None, progress: bool,
           group: Group) -> tuple[ContrastiveModel, list[dict[str, float]]]:
    """The training loop of one process of ``group``; only the main one writes."""
    seed_everything(settings.seed)
    model = place(_model(settings, images.shape[-1]), device)
    optimizer = torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=0.9, weight_decay=settings.weight_decay)
    history, start_epoch, _ = resume(checkpoint, model, optimizer, "pretext")
    network = parallel(model, group, device)
    batch_size = min(settings.batch_size, len(images))
    epochs = tqdm(range(start_epoch, settings.epochs), desc="pretext", disable=not (progress and group.main),
                  initial=start_epoch, total=settings.epochs)
    for epoch in epochs:
        model.train()
        for parameters in optimizer.param_groups:
            parameters["lr"] = cosine_lr(settings.lr, epoch, settings.epochs)
        generator = epoch_generator(settings.seed, epoch)
        produce = partial(pretext_views, images, augment=augment, generator=generator, device=device)
        total, steps = 0.0, 0
        for step, views in enumerate(epoch_batches(len(images), batch_size, generator, True, produce, group)):
            loss = pretext_step(network, views, settings.temperature, group)
            value = group.mean(loss.detach())
            check_finite(value, "pretext", epoch + 1, step + 1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, steps = total + value.item(), steps + 1
        record = {"epoch": epoch + 1, "loss": total / steps}
        history.append(record)
        if group.main:
            checkpoint.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                             "history": history})
            epochs.set_postfix(loss=f"{record['loss']:.3f}")
            if on_epoch:
                on_epoch(epoch + 1, record)
    return model, history
