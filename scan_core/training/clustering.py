"""SCAN clustering step: train heads so images and their mined neighbors agree (Eq. 2)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import partial
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from scan_core.augment.settings import AugmentSettings
from scan_core.augment.simclr import simclr_view
from scan_core.augment.strong import strong_view
from scan_core.checkpoint import TrainingCheckpoint
from scan_core.collectives import SINGLE, Group
from scan_core.defaults import PARAM_DEFAULTS
from scan_core.health import label_free_health, neighbor_modularity
from scan_core.losses.clustering import PROBABILITY_FLOOR, class_softmax, scan_loss, size_penalty
from scan_core.models import ClusteringModel
from scan_core.recipes import DEFAULT_RECIPE, RECIPES
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
from scan_core.training.multiprocess import launch, parallel, portable_state, restore_state
from scan_core.training.warm_start import kmeans_partitions, spectral_partitions, warm_start_heads


# SCAN's augmentation (the paper's ablation compares its strong one with SimCLR's). ``none``:
# the heads of a frozen backbone train on its features of the plain images, computed once.
VIEWS = {"strong": strong_view, "simclr": simclr_view}
CACHED_FEATURES = "none"
AUGMENTATIONS = (*VIEWS, CACHED_FEATURES)


_PARAMS = PARAM_DEFAULTS["scan"]


@dataclass(frozen=True)
class ScanSettings:
    """One SCAN run. Defaults are params.yaml's (``scan_core.defaults.PARAM_DEFAULTS``); for
    ``epochs`` and ``batch_size``, which params.yaml leaves ``auto`` and the pipeline resolves
    from the images (``scan_core.defaults.resolve_stage``), concrete stand-ins: the authors'
    50 epochs, batch 128; ``lr``, ``update_backbone`` and ``augmentation`` (``auto``: the
    recipe's) take the default recipe's values."""

    num_clusters: int = _PARAMS["num_clusters"]
    num_heads: int = _PARAMS["num_heads"]
    head: str = _PARAMS["head"]  # linear (SCAN's) or mlp (scan_core.models.cluster_head)
    num_neighbors: int = _PARAMS["num_neighbors"]
    # One weight for every head (the authors' 5), or one per head (``entropy_weight_ladder``, what
    # params.yaml's auto becomes): the selection then chooses the weight too.
    entropy_weight: float | tuple[float, ...] = _PARAMS["entropy_weight"]
    epochs: int = 50
    batch_size: int = 128
    lr: float = RECIPES[DEFAULT_RECIPE].scan_lr
    weight_decay: float = _PARAMS["weight_decay"]
    update_backbone: bool = RECIPES[DEFAULT_RECIPE].scan_update_backbone
    init: str = _PARAMS["init"]
    augmentation: str = RECIPES[DEFAULT_RECIPE].scan_augmentation
    selection: str = _PARAMS["selection"]  # scan_loss (the authors') | modularity: see ``selection_scores``
    # "equal" (the paper's entropy term), or the sizes (any scale, any order) the clusters should
    # take, for classes known to be unequal, or "start": the sizes of the heads' starting partitions
    # (``requested_sizes``, ``size_penalty``).
    cluster_sizes: str | tuple[float, ...] = _PARAMS["cluster_sizes"]
    seed: int = _PARAMS["seed"]


EQUAL_SIZES = "equal"
START_SIZES = "start"


def requested_sizes(settings: ScanSettings, initial_clusters: Tensor | None = None) -> Tensor | None:
    """``settings.cluster_sizes`` as proportions in ascending order (what ``size_penalty`` compares
    the sorted cluster sizes with), or None for equal clusters. ``start``: the sorted sizes of the
    heads' starting partitions ``initial_clusters``, averaged over the heads, a label-free guess
    that keeps the clusters about as unequal as the start drew them."""
    sizes = settings.cluster_sizes
    if sizes == EQUAL_SIZES:
        return None
    if sizes == START_SIZES:
        if initial_clusters is None:
            raise ValueError("cluster_sizes 'start' asks for the sizes of the heads' starting partitions: "
                             "it needs init 'kmeans' or 'spectral'")
        counts = torch.stack([torch.bincount(partition, minlength=settings.num_clusters).sort().values
                              for partition in initial_clusters.long().cpu()]).float().mean(dim=0)
        counts = counts.clamp_min(1.0)  # a start cluster left empty must not ask for an empty cluster
        return counts / counts.sum()
    if len(sizes) != settings.num_clusters or min(sizes) <= 0:
        raise ValueError(f"cluster_sizes {list(sizes)} must give {settings.num_clusters} positive sizes, one per cluster")
    ordered = torch.tensor(sorted(sizes), dtype=torch.float32)
    return ordered / ordered.sum()


def head_entropy_weights(settings: ScanSettings) -> Tensor:
    """Each head's entropy weight, ``[num_heads]``."""
    weights = settings.entropy_weight
    if isinstance(weights, (int, float)):
        return torch.full((settings.num_heads,), float(weights))
    if len(weights) != settings.num_heads:
        raise ValueError(f"entropy_weight gives {len(weights)} weights for {settings.num_heads} heads; "
                         f"give one number, or one per head")
    return torch.tensor([float(weight) for weight in weights])


def used_neighbors(neighbors: Tensor, num_neighbors: int) -> Tensor:
    """The first ``num_neighbors`` columns of ``neighbors``; with 0 each image is its own
    only neighbor (the paper's K = 0 ablation)."""
    if num_neighbors == 0:
        return torch.arange(len(neighbors))[:, None]
    if neighbors.shape[1] < num_neighbors:
        raise ValueError(f"num_neighbors = {num_neighbors}, but only {neighbors.shape[1]} neighbors per image "
                         f"were given; mine more (mine.topk) or use fewer")
    return neighbors[:, :num_neighbors]


def sample_neighbors(neighbors: Tensor, anchors: Tensor, generator: torch.Generator) -> Tensor:
    """One neighbor per anchor, drawn uniformly from its top ``neighbors.shape[1]``."""
    picks = torch.randint(0, neighbors.shape[1], (len(anchors),), generator=generator)
    return neighbors[anchors, picks]


SELECTION_ENTROPY_WEIGHT = 1.0


def head_losses(probabilities: Tensor, neighbors: Tensor, entropy_weight: float = SELECTION_ENTROPY_WEIGHT,
                chunk_size: int = 4096, size_profile: Tensor | None = None) -> Tensor:
    """SCAN total loss of every head on un-augmented images over all mined neighbor pairs:
    the label-free criterion that picks a head and an epoch.

    The authors select with entropy weight 1, whatever the training weight: a heavier weight
    would favour balanced-but-wrong heads. With a ``size_profile`` the size term is the one
    training used (``size_penalty``). Anchors are taken in chunks so memory stays at
    ``chunk_size * k * C`` floats however many images there are.
    """
    consistency = torch.zeros(len(probabilities))
    for start in range(0, probabilities.shape[1], chunk_size):
        anchors = probabilities[:, start : start + chunk_size]
        partners = probabilities[:, neighbors[start : start + chunk_size]]
        agreement = (anchors.unsqueeze(2) * partners).sum(dim=-1)
        consistency += -torch.log(agreement.clamp_min(PROBABILITY_FLOOR)).sum(dim=(1, 2))
    consistency /= neighbors.numel()
    return consistency + entropy_weight * size_penalty(probabilities.mean(dim=1), size_profile)


SELECTION_DESCRIPTIONS = {"scan_loss": "minus SCAN loss with entropy weight 1 (the authors')",
                          "modularity": "modularity of its clusters on the mined neighbor graph"}
SELECTIONS = tuple(SELECTION_DESCRIPTIONS)


def head_modularity(probabilities: Tensor, neighbors: Tensor) -> Tensor:
    """Modularity of every head's clusters on the mined neighbor graph, ``[heads]``
    (``scan_core.health.neighbor_modularity``)."""
    neighbor_rows = neighbors.numpy()
    return torch.tensor([neighbor_modularity(clusters, neighbor_rows)
                         for clusters in probabilities.argmax(dim=-1).numpy()])


def selection_scores(probabilities: Tensor, neighbors: Tensor, selection: str,
                     size_profile: Tensor | None = None) -> Tensor:
    """The label-free score of every head, higher is better: minus its SCAN loss with entropy
    weight 1 (``scan_loss``, the authors'), or the modularity of its clusters on the mined
    neighbor graph. ``size_profile``: the unequal sizes training asked for (``scan_loss`` only).

    Modularity counts the neighbor pairs a partition keeps beyond chance for its sizes, so it can
    prefer a head that keeps a large class whole where the authors' entropy term prefers equal
    clusters; on balanced digits it chose worse heads (about 1 point of ACC over the seeds
    measured, docs/results.md), so the authors' criterion is the default.
    """
    if selection == "modularity":
        return head_modularity(probabilities, neighbors)
    if selection == "scan_loss":
        return -head_losses(probabilities, neighbors, size_profile=size_profile)
    raise ValueError(f"unknown selection {selection!r}; valid: {', '.join(SELECTIONS)}")


def epoch_health(probabilities: Tensor, neighbors: Tensor) -> dict[str, float]:
    """Label-free state of one head after an epoch (see ``scan_core.health``)."""
    confidence, clusters = probabilities.max(dim=1)
    return label_free_health(clusters.numpy(), probabilities.shape[1], neighbors.numpy(), confidence.numpy())


def collapse_report(probabilities: Tensor) -> dict[str, float]:
    """How spread the clustering is: non-empty clusters and entropy of the mean prediction
    relative to its maximum (``prediction_balance``, 1.0 = perfectly balanced; the soft
    counterpart of ``scan_core.health``'s ``size_balance``)."""
    num_clusters = probabilities.shape[-1]
    sizes = torch.bincount(probabilities.argmax(dim=-1), minlength=num_clusters)
    mean_probs = probabilities.mean(dim=0).clamp_min(PROBABILITY_FLOOR)
    entropy = float(-(mean_probs * torch.log(mean_probs)).sum())
    return {"nonempty_clusters": int((sizes > 0).sum()), "prediction_balance": entropy / float(np.log(num_clusters))}


def collapse_warning(report: dict[str, float], num_clusters: int) -> str | None:
    """A message with the usual fixes when clusters are empty or badly unbalanced, else None."""
    if report["nonempty_clusters"] >= num_clusters and report["prediction_balance"] >= 0.5:
        return None
    return (
        f"clusters collapsed: only {report['nonempty_clusters']} of {num_clusters} clusters are used "
        f"(balance of the mean prediction {report['prediction_balance']:.2f} of 1.0). Raise scan.entropy_weight, or overcluster "
        f"(a larger scan.num_clusters)."
    )


ProbabilityProbe = Callable[[Tensor], dict[str, float]]


def scan_views(images: Images, neighbors: Tensor, rows: Tensor, view: Callable, augment: AugmentSettings,
               generator: torch.Generator, device: torch.device) -> Tensor:
    """Augmented views of the anchors ``rows`` and of one mined neighbor of each,
    ``[B, 2, C, H, W]`` on ``device``; the neighbors and every view parameter are drawn from
    ``generator``."""
    partners = sample_neighbors(neighbors, rows, generator)
    pair = load_floats(images, torch.cat([rows, partners]), device)
    return torch.stack(view(pair, augment, generator).chunk(2), dim=1)


def feature_views(features: Tensor, neighbors: Tensor, rows: Tensor, generator: torch.Generator,
                  device: torch.device) -> Tensor:
    """The cached features of the anchors ``rows`` and of one mined neighbor of each,
    ``[B, 2, dim]`` on ``device``: what the heads of a frozen backbone see, with no image read."""
    partners = sample_neighbors(neighbors, rows, generator)
    return torch.stack([features[rows], features[partners]], dim=1).to(device, non_blocking=True)


class HeadsOnFeatures(nn.Module):
    """The heads of ``model`` applied to features its (frozen) backbone has already computed.

    Linear heads run as one matrix product of the features with all their weights side by
    side: on cached features the heads are all the work there is, and ten small products
    cost several times one wide one.
    """

    def __init__(self, model: ClusteringModel) -> None:
        super().__init__()
        self.heads = model.heads
        self.linear = all(isinstance(head, nn.Linear) for head in self.heads)

    def forward(self, features: Tensor) -> Tensor:
        if not self.linear:
            return torch.stack([head(features) for head in self.heads])
        weights = torch.cat([head.weight for head in self.heads])  # [heads * C, dim]
        biases = torch.cat([head.bias for head in self.heads])
        logits = F.linear(features, weights, biases)  # [B, heads * C]
        return logits.view(len(features), len(self.heads), -1).transpose(0, 1)


def scan_step(model: nn.Module, views: Tensor, entropy_weight: float | Tensor,
              group: Group = SINGLE, size_profile: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The loss of one step on ``views`` ``[b, 2, C, H, W]`` (anchor, neighbor; this process's
    rows): the sum over heads of SCAN's loss in float32, the entropy over the global batch;
    ``entropy_weight`` is one number or one per head; ``size_profile``: see ``scan_loss``.
    Also returns each head's detached ``(total, consistency, entropy)``, ``[heads, 3]``."""
    with autocast(views.device):
        logits = model(as_input(views.transpose(0, 1).flatten(0, 1)))
    anchor_logits, neighbor_logits = logits.float().chunk(2, dim=1)
    if isinstance(entropy_weight, Tensor):
        entropy_weight = entropy_weight.to(anchor_logits.device)
    terms = scan_loss(anchor_logits, neighbor_logits, entropy_weight, group, size_profile)  # each [heads]
    return terms[0].sum(), torch.stack(terms, dim=1).detach()


@torch.no_grad()
def heads_probabilities(model: ClusteringModel, features: Tensor, device: torch.device,
                        batch_size: int = 4096) -> Tensor:
    """Softmax of every head on cached features, ``[num_heads, N, num_clusters]`` on the CPU
    (equal to ``predict_probabilities`` on the plain images while the backbone is frozen)."""
    model.eval()
    heads = HeadsOnFeatures(model)
    return torch.cat([class_softmax(heads(features[start:start + batch_size].to(device)).float()).cpu()
                      for start in range(0, len(features), batch_size)], dim=1)


def backbone_kmeans(backbone: nn.Module, images: Images, augment: AugmentSettings, device: torch.device,
                    settings: ScanSettings, features: Tensor | None = None) -> Tensor:
    """``init: kmeans`` without partitions given: one k-means partition per head of the
    L2-normalised backbone features (the pipeline passes its own, of the pretext embeddings)."""
    if features is None:
        features = compute_features(backbone, images, augment, 512, device)
    return kmeans_partitions(F.normalize(features.float(), dim=1).cpu().numpy(), settings.num_clusters,
                             settings.num_heads, settings.seed)


def start_partitions(backbone: nn.Module, images: Images, neighbors: Tensor, augment: AugmentSettings,
                     device: torch.device, settings: ScanSettings, features: Tensor | None = None) -> Tensor:
    """The heads' starting partitions when none are given: spectral clusterings of the graph of
    ``neighbors`` (``init: spectral``) or k-means of the backbone's features (``backbone_kmeans``)."""
    if settings.init == "spectral":
        if settings.num_neighbors == 0:
            raise ValueError("init 'spectral' clusters the neighbor graph: it needs num_neighbors of at least 1")
        return spectral_partitions(neighbors.numpy(), settings.num_clusters, settings.num_heads, settings.seed)
    return backbone_kmeans(backbone, images, augment, device, settings, features)


def train_scan(
    backbone: nn.Module,
    images: Images,
    neighbors: Tensor,
    settings: ScanSettings,
    augment: AugmentSettings,
    checkpoint: TrainingCheckpoint,
    device: torch.device,
    on_epoch: EpochCallback | None = None,
    progress: bool = True,
    probe: ProbabilityProbe | None = None,
    initial_clusters: Tensor | None = None,
    processes: int = 1,
    features: Tensor | None = None,
) -> tuple[ClusteringModel, list[dict[str, float]], dict]:
    """Train the clustering heads (and the backbone unless frozen) and keep the best head
    *and epoch*: after every epoch each head is scored without labels on all mined neighbor
    pairs (``selection_scores``: modularity, or the authors' SCAN loss with entropy weight 1),
    and the best score ever seen wins.

    ``neighbors[i]`` are the row indices (into ``images``) of image i's nearest neighbors, nearest
    first; the first ``settings.num_neighbors`` of them are used (``used_neighbors``).
    ``probe`` sees the chosen head's probabilities each epoch and adds its numbers to the
    history (for reporting, e.g. ACC against labels; it never influences the choice).
    With ``init: kmeans`` the heads are warm-started (``warm_start_heads``) from
    ``initial_clusters`` (``[num_heads, N]``, e.g. k-means partitions of the pretext embeddings),
    or without them from k-means of the backbone's features (``backbone_kmeans``); with
    ``init: spectral`` from spectral clusterings of the neighbor graph (``spectral_partitions``),
    which may be unequal; with ``init: random`` they start at random and ``initial_clusters``
    must be None.
    With ``processes`` > 1 training runs in that many processes on the same global batches and draws (the selection pass on
    the main one); ``images`` and ``probe`` must then pickle.
    ``features`` (``[N, backbone.output_dim]``, with augmentation ``none``) are the frozen
    backbone's outputs on the plain images when the caller has them already (features of a
    foundation model exported once); ``images`` is then not read at all.
    Returns the model, per-epoch history, and the selection (epoch, head, criterion).
    """
    neighbors = used_neighbors(neighbors, settings.num_neighbors)
    arguments = (images, neighbors, settings, augment, checkpoint, progress, probe, initial_clusters, features)
    if processes > 1:
        state, history, selection = launch(_scan_process, processes, device, on_epoch, backbone, *arguments)
        model = restore_state(ClusteringModel(backbone, settings.num_clusters, 1, settings.head), state)
        return model.to(device), history, selection
    return _train(SINGLE, device, on_epoch, backbone, *arguments)


def _scan_process(group: Group, device: torch.device, on_epoch: EpochCallback | None, backbone: nn.Module,
                  *arguments) -> tuple[bytes, list[dict[str, float]], dict] | None:
    model, history, selection = _train(group, device, on_epoch, backbone, *arguments)
    return (portable_state(model), history, selection) if group.main else None


def _train(group: Group, device: torch.device, on_epoch: EpochCallback | None, backbone: nn.Module, images: Images,
           neighbors: Tensor, settings: ScanSettings, augment: AugmentSettings, checkpoint: TrainingCheckpoint,
           progress: bool, probe: ProbabilityProbe | None, initial_clusters: Tensor | None,
           features: Tensor | None) -> tuple[ClusteringModel, list[dict[str, float]], dict]:
    """The training loop of one process of ``group``; only the main one selects and writes
    (the others' model and history are not the result)."""
    seed_everything(settings.seed)
    model = place(ClusteringModel(backbone, settings.num_clusters, settings.num_heads, settings.head), device)
    cached = settings.augmentation == CACHED_FEATURES
    if cached and settings.update_backbone:
        raise ValueError("scan augmentation 'none' trains the heads on cached features: it needs a frozen "
                         "backbone (update_backbone False)")
    if features is not None and not cached:
        raise ValueError("features are the frozen backbone's: they need augmentation 'none'")
    if cached and features is None:  # the one pass of the frozen backbone over the images
        features = compute_features(model.backbone, images, augment, 512, device)
    features = features.cpu() if cached else None
    if settings.init == "random" and initial_clusters is not None:
        raise ValueError("initial_clusters were given with init 'random'; use init 'kmeans' or 'spectral' to start "
                         "from them")
    # The other processes receive the main one's weights (DDP), but need the partitions' sizes to ask for them.
    if settings.init != "random" and initial_clusters is None and (group.main or settings.cluster_sizes == START_SIZES):
        initial_clusters = start_partitions(model.backbone, images, neighbors, augment, device, settings, features)
    if settings.init != "random" and group.main:
        warm_start_heads(model, images, augment, device, initial_clusters, features=features)
    if not settings.update_backbone:
        model.backbone.requires_grad_(False)
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=settings.lr, weight_decay=settings.weight_decay)
    # What changes, so what a checkpoint and the best epoch keep: a frozen backbone is the pretext's.
    trained = model if settings.update_backbone else model.heads
    history, start_epoch, state = resume(checkpoint, trained, optimizer, "scan")
    network = parallel(HeadsOnFeatures(model) if cached else model, group, device)
    best = state["best"] if state is not None else {"score": float("-inf")}
    entropy_weights = head_entropy_weights(settings)
    profile = requested_sizes(settings, initial_clusters)
    best_state = state["best_model"] if state is not None else None
    count = len(features) if cached else len(images)
    batch_size = min(settings.batch_size, count)
    epochs = tqdm(range(start_epoch, settings.epochs), desc="scan", disable=not (progress and group.main),
                  initial=start_epoch, total=settings.epochs)
    view = VIEWS.get(settings.augmentation)
    for epoch in epochs:
        model.train()
        if not settings.update_backbone:
            model.backbone.eval()
        generator = epoch_generator(settings.seed, epoch)
        produce = partial(feature_views, features, neighbors, generator=generator, device=device) if cached else \
            partial(scan_views, images, neighbors, view=view, augment=augment, generator=generator, device=device)
        sums = torch.zeros(3)
        steps = 0
        for step, views in enumerate(epoch_batches(count, batch_size, generator, True, produce, group)):
            loss, terms = scan_step(network, views, entropy_weights, group, profile)
            values = group.mean(torch.cat([loss.detach().view(1), terms.flatten()])).cpu()
            check_finite(values[0], "scan", epoch + 1, step + 1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sums += values[1:].view(terms.shape).mean(dim=0)
            steps += 1
        if not group.main:
            continue
        total, consistency, entropy = (sums / steps).tolist()
        probabilities = heads_probabilities(model, features, device) if cached else \
            predict_probabilities(model, images, augment, 512, device)
        scores = selection_scores(probabilities, neighbors, settings.selection, profile)
        head = int(scores.argmax())
        record = {"epoch": epoch + 1, "loss": total, "consistency": consistency, "entropy": entropy,
                  "selection_score": float(scores[head]), "head": head,
                  "head_entropy_weight": float(entropy_weights[head]),
                  "selection_loss": float(head_losses(probabilities[head:head + 1], neighbors,
                                                      size_profile=profile)[0]),
                  "modularity": float(head_modularity(probabilities[head:head + 1], neighbors)[0]),
                  **epoch_health(probabilities[head], neighbors)}
        if probe is not None:
            record.update(probe(probabilities[head]))
        if record["selection_score"] > best["score"]:
            best = {"epoch": epoch + 1, "head": head, "criterion": settings.selection,
                    "score": record["selection_score"], "entropy_weight": record["head_entropy_weight"]}
            best_state = copy.deepcopy(trained.state_dict())
        history.append(record)
        checkpoint.save({"model": trained.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                         "history": history, "best": best, "best_model": best_state})
        epochs.set_postfix(loss=f"{total:.3f}", agreement=f"{record['neighbor_agreement']:.3f}")
        if on_epoch:
            on_epoch(epoch + 1, record)
    if group.main:
        trained.load_state_dict(best_state)  # epochs >= 1, and a resumed checkpoint carries its choice
        model.keep_head(best["head"])
    asked = {} if profile is None else {"cluster_sizes_asked": [round(share, 6) for share in profile.tolist()]}
    return model, history, {**best, "heads": settings.num_heads, **asked}
