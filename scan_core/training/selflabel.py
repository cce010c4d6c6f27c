"""Self-labeling: fine-tune on the model's own confident predictions (paper Sec. 2.3)."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm.auto import tqdm

from scan_core.augment import AugmentSettings, strong_view, to_float, weak_view
from scan_core.checkpoint import TrainingCheckpoint
from scan_core.losses import confidence_ce
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


def count_confident(model: ClusteringModel, images: Tensor, augment: AugmentSettings,
                    threshold: float, device: torch.device) -> int:
    probabilities = predict_probabilities(model, images, augment, 512, device)[0]
    return int((probabilities.max(dim=1).values > threshold).sum())


def train_selflabel(
    model: ClusteringModel,
    images: Tensor,
    settings: SelflabelSettings,
    augment: AugmentSettings,
    checkpoint: TrainingCheckpoint,
    device: torch.device,
    on_epoch: EpochCallback | None = None,
    progress: bool = True,
) -> tuple[ClusteringModel, list[dict[str, float]]]:
    """Cross-entropy on strong views against confident weak-view predictions.

    Keeps the weights of the epoch with the most confident samples (the paper stops when
    that number plateaus; no labels are used). When no sample is ever confident the
    clustering model comes back unchanged and ``history`` says so.
    """
    seed_everything(settings.seed)
    model = model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    initial_confident = count_confident(model, images, augment, settings.threshold, device)
    best_state, best_confident = copy.deepcopy(model.state_dict()), initial_confident
    history, start_epoch, state = resume(checkpoint, model, optimizer, "selflabel")
    if state is not None:
        best_state, best_confident = state["best_model"], state["best_confident"]
    if initial_confident == 0:
        logger.warning("selflabel: no image is predicted above threshold %s; keeping the clustering model",
                       settings.threshold)
        start_epoch = settings.epochs  # nothing to learn from
    batch_size = min(settings.batch_size, len(images))
    epochs = tqdm(range(start_epoch, settings.epochs), desc="selflabel", disable=not progress,
                  initial=start_epoch, total=settings.epochs)
    for epoch in epochs:
        model.train()
        generator = epoch_generator(settings.seed, epoch)
        total, steps = 0.0, 0
        for step, batch in enumerate(index_batches(len(images), batch_size, generator, drop_last=False)):
            originals = to_float(images[batch])
            with torch.no_grad():
                weak_logits = model(weak_view(originals, augment, generator).to(device))[0]
            strong_logits = model(strong_view(originals, augment, generator).to(device))[0]
            loss, _ = confidence_ce(weak_logits, strong_logits, settings.threshold, settings.class_balance)
            check_finite(loss, "selflabel", epoch + 1, step + 1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, steps = total + loss.item(), steps + 1
        confident = count_confident(model, images, augment, settings.threshold, device)
        if confident > best_confident:
            best_state, best_confident = copy.deepcopy(model.state_dict()), confident
        record = {"epoch": epoch + 1, "loss": total / steps, "confident": confident}
        history.append(record)
        checkpoint.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                         "history": history, "best_model": best_state, "best_confident": best_confident})
        epochs.set_postfix(loss=f"{record['loss']:.3f}", confident=confident)
        if on_epoch:
            on_epoch(epoch + 1, record)
    model.load_state_dict(best_state)
    return model, history
