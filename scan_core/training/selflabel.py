"""Self-labeling: fine-tune on the model's own confident predictions (paper Sec. 2.3)."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor
from tqdm.auto import tqdm

from scan_core.augment.settings import AugmentSettings, normalize, to_float
from scan_core.augment.strong import strong_view
from scan_core.checkpoint import TrainingCheckpoint
from scan_core.losses.confidence import confidence_ce
from scan_core.models import ClusteringModel
from scan_core.training.common import (
    EpochCallback,
    check_finite,
    epoch_generator,
    index_batches,
    predict_probabilities,
    resume,
    seed_everything,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SelflabelSettings:
    threshold: float = 0.99
    class_balance: bool = True
    epochs: int = 200
    batch_size: int = 1000
    lr: float = 1e-4
    weight_decay: float = 1e-4
    seed: int = 0
    ema: float = 0.0
    patience: int = 10


def count_confident(model: ClusteringModel, images: Tensor, augment: AugmentSettings,
                    threshold: float, device: torch.device) -> int:
    probabilities = predict_probabilities(model, images, augment, 512, device)[0]
    return int((probabilities.max(dim=1).values > threshold).sum())


def update_ema(average: ClusteringModel, model: ClusteringModel, decay: float) -> None:
    """``average = decay * average + (1 - decay) * model`` for weights; buffers (BatchNorm
    statistics) are copied, as they are averages already."""
    with torch.no_grad():
        for kept, current in zip(average.parameters(), model.parameters()):
            kept.lerp_(current, 1.0 - decay)
        for kept, current in zip(average.buffers(), model.buffers()):
            kept.copy_(current)


def train_selflabel(
    model: ClusteringModel,
    images: Tensor,
    settings: SelflabelSettings,
    augment: AugmentSettings,
    checkpoint: TrainingCheckpoint,
    device: torch.device,
    on_epoch: EpochCallback | None = None,
    progress: bool = True,
    probe: Callable[[Tensor], dict[str, float]] | None = None,
) -> tuple[ClusteringModel, list[dict[str, float]]]:
    """Cross-entropy on strong views against confident predictions of the plain image.

    As in the authors' code the pseudo-label comes from the un-augmented image (the
    "weak" view is the evaluation transform). With ``ema`` > 0 an exponential moving
    average of the weights is what is scored and kept. The weights of the epoch with the
    most confident images are kept (the paper stops when that number plateaus; no labels
    are used), and training stops after ``patience`` epochs without a new maximum. When no
    sample is ever confident the clustering model comes back unchanged and ``history``
    says so. ``probe`` reports on the scored model's probabilities each epoch (never used
    to choose).
    """
    seed_everything(settings.seed)
    model = model.to(device)
    scored = copy.deepcopy(model) if settings.ema > 0 else model
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    initial_confident = count_confident(model, images, augment, settings.threshold, device)
    best_state, best_confident, best_epoch = copy.deepcopy(model.state_dict()), initial_confident, 0
    history, start_epoch, state = resume(checkpoint, model, optimizer, "selflabel")
    if state is not None:
        best_state, best_confident, best_epoch = state["best_model"], state["best_confident"], state["best_epoch"]
        if settings.ema > 0:
            scored.load_state_dict(state["ema_model"])
    if initial_confident == 0:
        logger.warning("selflabel: no image is predicted above threshold %s; keeping the clustering model",
                       settings.threshold)
        start_epoch = settings.epochs  # nothing to learn from
    batch_size = min(settings.batch_size, len(images))
    epochs = tqdm(range(start_epoch, settings.epochs), desc="selflabel", disable=not progress,
                  initial=start_epoch, total=settings.epochs)
    for epoch in epochs:
        if epoch - best_epoch >= settings.patience:
            logger.info("selflabel: no new confident maximum for %d epochs; stopping", settings.patience)
            break
        model.train()
        generator = epoch_generator(settings.seed, epoch)
        total, steps = 0.0, 0
        for step, batch in enumerate(index_batches(len(images), batch_size, generator, drop_last=False)):
            originals = to_float(images[batch])
            model.eval()
            with torch.no_grad():
                plain_logits = model(normalize(originals, augment).to(device))[0]
            model.train()
            strong_logits = model(strong_view(originals, augment, generator).to(device))[0]
            loss, _ = confidence_ce(plain_logits, strong_logits, settings.threshold, settings.class_balance)
            check_finite(loss, "selflabel", epoch + 1, step + 1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if settings.ema > 0:
                update_ema(scored, model, settings.ema)
            total, steps = total + loss.item(), steps + 1
        probabilities = predict_probabilities(scored, images, augment, 512, device)[0]
        confident = int((probabilities.max(dim=1).values > settings.threshold).sum())
        if confident > best_confident:
            best_state, best_confident, best_epoch = copy.deepcopy(scored.state_dict()), confident, epoch + 1
        record = {"epoch": epoch + 1, "loss": total / steps, "confident": confident}
        if probe is not None:
            record.update(probe(probabilities))
        history.append(record)
        checkpoint.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                         "history": history, "best_model": best_state, "best_confident": best_confident,
                         "best_epoch": best_epoch,
                         **({"ema_model": scored.state_dict()} if settings.ema > 0 else {})})
        epochs.set_postfix(loss=f"{record['loss']:.3f}", confident=confident)
        if on_epoch:
            on_epoch(epoch + 1, record)
    model.load_state_dict(best_state)
    return model, history
