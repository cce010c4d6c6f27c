"""Self-labeling: fine-tune on the model's own confident predictions (paper Sec. 2.3)."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from functools import partial
from typing import Callable

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from scan_core.augment.settings import AugmentSettings, normalize
from scan_core.augment.strong import strong_view
from scan_core.checkpoint import TrainingCheckpoint
from scan_core.collectives import SINGLE, Group
from scan_core.defaults import PARAM_DEFAULTS
from scan_core.health import cluster_balance
from scan_core.losses.confidence import confidence_ce
from scan_core.models import ClusteringModel
from scan_core.training.clustering import HeadsOnFeatures, heads_probabilities
from scan_core.training.common import (
    EpochCallback,
    Images,
    as_input,
    autocast,
    check_finite,
    compute_features,
    epoch_batches,
    epoch_generator,
    load_floats,
    place,
    predict_probabilities,
    resume,
    seed_everything,
)
from scan_core.training.multiprocess import launch, parallel, portable_state, restore_state, unwrap

logger = logging.getLogger(__name__)


_PARAMS = PARAM_DEFAULTS["selflabel"]


@dataclass(frozen=True)
class SelflabelSettings:
    """One self-labeling run. Defaults are params.yaml's (``scan_core.defaults.PARAM_DEFAULTS``);
    for ``epochs`` and ``batch_size``, which params.yaml leaves ``auto`` and the pipeline
    resolves from the images (``scan_core.defaults.resolve_stage``), concrete stand-ins: the
    authors' 200 epochs, batch 1000."""

    threshold: float = _PARAMS["threshold"]
    class_balance: bool = _PARAMS["class_balance"]
    epochs: int = 200
    batch_size: int = 1000
    lr: float = _PARAMS["lr"]
    weight_decay: float = _PARAMS["weight_decay"]
    seed: int = _PARAMS["seed"]
    ema: float = _PARAMS["ema"]
    patience: int = _PARAMS["patience"]
    # A confident image teaches only if at least this share of its mined neighbors sit in its
    # cluster (0: every confident image does, the paper's rule); ``trusted_images``.
    neighbor_consensus: float = _PARAMS["neighbor_consensus"]
    # online: pseudo-labels from the model being trained (the paper); fixed: from the clustering
    # model as self-labeling starts, computed once, so a mistake cannot recruit more of its kind.
    teacher: str = _PARAMS["teacher"]
    # The heads of a frozen backbone, trained on its cached features (scan.augmentation none):
    # the backbone runs once, no image is read per epoch, and the "strong view" of a feature
    # is the feature itself, so self-labeling sharpens the heads on their confident images.
    heads_on_features: bool = False


Scorer = Callable[[ClusteringModel], Tensor]


def image_scorer(images: Images, augment: AugmentSettings, device: torch.device) -> Scorer:
    """The first head's probabilities on the plain images, ``[N, num_clusters]``."""
    return lambda model: predict_probabilities(model, images, augment, 512, device)[0]


def feature_scorer(features: Tensor, device: torch.device) -> Scorer:
    """The first head's probabilities on cached backbone features, ``[N, num_clusters]``."""
    return lambda model: heads_probabilities(model, features, device)[0]


def confident_count(probabilities: Tensor, threshold: float) -> int:
    return int((probabilities.max(dim=1).values > threshold).sum())


def confident_balance(probabilities: Tensor, threshold: float) -> float:
    """Balance of the pseudo-classes among the images above ``threshold`` (1.0: equal; see
    ``scan_core.health.cluster_balance``): a falling value means self-labeling is feeding a few
    clusters at the others' expense."""
    confidence, clusters = probabilities.max(dim=1)
    confident = clusters[confidence > threshold]
    return cluster_balance(confident.numpy(), probabilities.shape[1]) if len(confident) else 0.0


def count_confident(model: ClusteringModel, images: Images, augment: AugmentSettings,
                    threshold: float, device: torch.device) -> int:
    """How many plain images the first head predicts above ``threshold``."""
    return confident_count(image_scorer(images, augment, device)(model), threshold)


def trusted_images(probabilities: Tensor, neighbors: Tensor, consensus: float) -> Tensor:
    """Which images may lend their prediction as a pseudo-label: those of which at least
    ``consensus`` of the mined neighbors (``neighbors[i]``: row indices) are predicted in the
    same cluster.

    Confidence alone is not evidence: a head that cuts one class in two is as sure of the
    cut's wrong side as of the right one (Fashion-MNIST at threshold 0.99: 85 % of the
    pseudo-labels right). An image whose neighbors disagree with it sits on such a cut.
    """
    if consensus <= 0:
        return torch.ones(len(probabilities), dtype=torch.bool)
    clusters = probabilities.argmax(dim=1)
    return (clusters[neighbors] == clusters[:, None]).float().mean(dim=1) >= consensus


def with_rows(produce: Callable[[Tensor], Tensor], per_row: list[Tensor]) -> Callable[[Tensor], tuple[Tensor, ...]]:
    """``produce`` that also hands over ``values[rows]`` of each of ``per_row``, sharded alongside the views."""
    return lambda rows: (produce(rows), *(values[rows] for values in per_row))


def teacher_logits(probabilities: Tensor) -> Tensor:
    """Log-probabilities that stand in for a teacher's logits (a softmax gives ``probabilities`` back)."""
    return probabilities.clamp_min(1e-12).log()


def repeated_features(features: Tensor, rows: Tensor, device: torch.device) -> Tensor:
    """The cached features of ``rows`` as both views, ``[B, 2, dim]`` on ``device``."""
    chosen = features[rows].to(device, non_blocking=True)
    return torch.stack([chosen, chosen], dim=1)


def update_ema(average: ClusteringModel, model: ClusteringModel, decay: float) -> None:
    """``average = decay * average + (1 - decay) * model`` for weights; buffers (BatchNorm
    statistics) are copied, as they are averages already."""
    with torch.no_grad():
        for kept, current in zip(average.parameters(), model.parameters()):
            kept.lerp_(current, 1.0 - decay)
        for kept, current in zip(average.buffers(), model.buffers()):
            kept.copy_(current)


def selflabel_views(images: Images, rows: Tensor, augment: AugmentSettings, generator: torch.Generator,
                    device: torch.device, plain: bool = True) -> Tensor:
    """The plain (normalised) image and one strong view of each image ``rows``,
    ``[B, 2, C, H, W]`` on ``device``; every view parameter is drawn from ``generator``. Without
    ``plain`` (a fixed teacher has labeled the plain images already) only the strong view,
    ``[B, 1, C, H, W]``."""
    originals = load_floats(images, rows, device)
    strong = strong_view(originals, augment, generator)
    return torch.stack([normalize(originals, augment), strong] if plain else [strong], dim=1)


def selflabel_step(model: nn.Module, views: Tensor, threshold: float, class_balance: bool,
                   group: Group = SINGLE, allowed: Tensor | None = None,
                   fixed_logits: Tensor | None = None) -> tuple[Tensor, int]:
    """The loss of one step on ``views`` ``[b, 2, C, H, W]`` (plain, strong; this process's
    rows): pseudo-labels from the plain image in eval mode without gradient (or from
    ``fixed_logits``, a teacher's for these rows, when ``views`` may hold the strong view alone),
    cross-entropy of the strong view in train mode, class weights over the global batch;
    ``allowed`` (bool per row) leaves out rows whose pseudo-label is not trusted. Also returns
    the global number of confident images."""
    strong = as_input(views[:, -1])
    inner = unwrap(model)
    if fixed_logits is None:
        inner.eval()
        with torch.no_grad(), autocast(views.device):
            plain_logits = inner(as_input(views[:, 0]))[0]
    else:
        plain_logits = fixed_logits
    inner.train()
    with autocast(views.device):
        strong_logits = model(strong)[0]
    return confidence_ce(plain_logits.float(), strong_logits.float(), threshold, class_balance, group, allowed)


def train_selflabel(
    model: ClusteringModel,
    images: Images,
    settings: SelflabelSettings,
    augment: AugmentSettings,
    checkpoint: TrainingCheckpoint,
    device: torch.device,
    on_epoch: EpochCallback | None = None,
    progress: bool = True,
    probe: Callable[[Tensor], dict[str, float]] | None = None,
    processes: int = 1,
    neighbors: Tensor | None = None,
) -> tuple[ClusteringModel, list[dict[str, float]]]:
    """Cross-entropy on strong views against confident predictions of the plain image.

    As in the authors' code the pseudo-label comes from the un-augmented image (the
    "weak" view is the evaluation transform). With ``ema`` > 0 an exponential moving
    average of the weights is what is scored and kept. The weights of the epoch with the
    most confident images are kept (the paper stops when that number plateaus; no labels
    are used), and training stops after ``patience`` epochs without a new maximum. With
    ``neighbor_consensus`` > 0 a confident image teaches only while enough of its mined
    ``neighbors`` (``[N, k]`` row indices) share its cluster in the latest scoring pass
    (``trusted_images``). When no
    sample is ever confident the clustering model comes back unchanged and ``history``
    says so. ``probe`` reports on the scored model's probabilities each epoch (never used
    to choose). With ``processes`` > 1 training runs in that many processes on the same
    global batches and draws (the counting passes on the main one); ``images`` and ``probe``
    must then pickle.
    """
    if settings.neighbor_consensus > 0 and neighbors is None:
        raise ValueError("neighbor_consensus needs the mined neighbors (train_selflabel(..., neighbors=...))")
    arguments = (images, settings, augment, checkpoint, progress, probe, neighbors)
    if processes > 1:
        state, history = launch(_selflabel_process, processes, device, on_epoch, model, *arguments)
        return restore_state(model, state).to(device), history
    return _train(SINGLE, device, on_epoch, model, *arguments)


def _selflabel_process(group: Group, device: torch.device, on_epoch: EpochCallback | None, model: ClusteringModel,
                       *arguments) -> tuple[bytes, list[dict[str, float]]] | None:
    trained, history = _train(group, device, on_epoch, model, *arguments)
    return (portable_state(trained), history) if group.main else None


def _train(group: Group, device: torch.device, on_epoch: EpochCallback | None, model: ClusteringModel,
           images: Images, settings: SelflabelSettings, augment: AugmentSettings, checkpoint: TrainingCheckpoint,
           progress: bool, probe: Callable[[Tensor], dict[str, float]] | None, neighbors: Tensor | None,
           ) -> tuple[ClusteringModel, list[dict[str, float]]]:
    """The training loop of one process of ``group``; only the main one counts confident
    images, chooses and writes, and tells the others when to stop."""
    seed_everything(settings.seed)
    model = place(model, device)
    features = None
    if settings.heads_on_features:
        features = compute_features(model.backbone, images, augment, 512, device).cpu()
        model.backbone.requires_grad_(False)
    score = feature_scorer(features, device) if features is not None else image_scorer(images, augment, device)
    scored = copy.deepcopy(model) if settings.ema > 0 else model
    # What changes, so what a checkpoint and the best epoch keep: a frozen backbone is the scan stage's.
    trained, scored_trained = (model.heads, scored.heads) if features is not None else (model, scored)
    optimizer = torch.optim.Adam([parameter for parameter in model.parameters() if parameter.requires_grad],
                                 lr=settings.lr, weight_decay=settings.weight_decay)
    latest = score(model) if group.main else None
    teacher = None
    if settings.teacher == "fixed":
        clusters = group.decide(latest.shape[1] if group.main else 0, device)
        teacher = group.share(teacher_logits(latest) if group.main else torch.zeros(len(images), clusters))
    initial_confident = group.decide(confident_count(latest, settings.threshold) if group.main else 0, device)
    best_state, best_confident, best_epoch = (copy.deepcopy(trained.state_dict()) if group.main else None,
                                              initial_confident, 0)
    history, start_epoch, state = resume(checkpoint, trained, optimizer, "selflabel")
    if state is not None:
        best_state, best_confident, best_epoch = state["best_model"], state["best_confident"], state["best_epoch"]
        if settings.ema > 0:
            scored_trained.load_state_dict(state["ema_model"])
    if initial_confident == 0:
        if group.main:
            logger.warning("selflabel: no image is predicted above threshold %s; keeping the clustering model",
                           settings.threshold)
        start_epoch = settings.epochs  # nothing to learn from
    network = parallel(HeadsOnFeatures(model) if features is not None else model, group, device)
    batch_size = min(settings.batch_size, len(images))
    trusted: Tensor | None = None  # under a fixed teacher the consensus never changes: computed once
    epochs = tqdm(range(start_epoch, settings.epochs), desc="selflabel", disable=not (progress and group.main),
                  initial=start_epoch, total=settings.epochs)
    for epoch in epochs:
        if group.decide(epoch - best_epoch >= settings.patience, device):
            if group.main:
                logger.info("selflabel: no new confident maximum for %d epochs; stopping", settings.patience)
            break
        model.train()
        if features is not None:
            model.backbone.eval()
        generator = epoch_generator(settings.seed, epoch)
        produce = partial(repeated_features, features, device=device) if features is not None else \
            partial(selflabel_views, images, augment=augment, generator=generator, device=device,
                    plain=teacher is None)
        per_row: dict[str, Tensor] = {}
        if settings.neighbor_consensus > 0:
            if teacher is None or trusted is None:
                trusted = group.share(
                    trusted_images(teacher if teacher is not None else latest, neighbors, settings.neighbor_consensus)
                    if group.main else torch.zeros(len(images), dtype=torch.bool))
            per_row["allowed"] = trusted
        if teacher is not None:
            per_row["fixed_logits"] = teacher
        if per_row:
            produce = with_rows(produce, list(per_row.values()))
        total, steps = 0.0, 0
        for step, batch in enumerate(epoch_batches(len(images), batch_size, generator, False, produce, group)):
            views, *values = batch if per_row else (batch,)
            loss, _ = selflabel_step(network, views, settings.threshold, settings.class_balance, group,
                                     **dict(zip(per_row, values)))
            value = group.mean(loss.detach())
            check_finite(value, "selflabel", epoch + 1, step + 1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if settings.ema > 0:
                update_ema(scored, model, settings.ema)
            total, steps = total + value.item(), steps + 1
        if not group.main:
            continue
        probabilities = latest = score(scored)
        confident = confident_count(probabilities, settings.threshold)
        if confident > best_confident:
            best_state, best_confident, best_epoch = copy.deepcopy(scored_trained.state_dict()), confident, epoch + 1
        record = {"epoch": epoch + 1, "loss": total / steps, "confident": confident,
                  "confident_balance": confident_balance(probabilities, settings.threshold)}
        if "allowed" in per_row:
            record["trusted"] = int(per_row["allowed"].sum())
        if probe is not None:
            record.update(probe(probabilities))
        history.append(record)
        checkpoint.save({"model": trained.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                         "history": history, "best_model": best_state, "best_confident": best_confident,
                         "best_epoch": best_epoch,
                         **({"ema_model": scored_trained.state_dict()} if settings.ema > 0 else {})})
        epochs.set_postfix(loss=f"{record['loss']:.3f}", confident=confident)
        if on_epoch:
            on_epoch(epoch + 1, record)
    if group.main:
        trained.load_state_dict(best_state)
    return model, history
