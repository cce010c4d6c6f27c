"""The three training loops on a tiny data set: histories, determinism and resuming.

40 images of 8x8 px, one channel, small_cnn, batch 16: each run takes a fraction of a second.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch

from scan_core.augment.settings import AugmentSettings, normalize, to_float
from scan_core.checkpoint import TrainingCheckpoint
from scan_core.models import ClusteringModel, build_backbone
from scan_core.losses.clustering import size_penalty
from scan_core.training.clustering import ScanSettings, head_losses, requested_sizes, train_scan
from scan_core.training.common import predict_probabilities
from scan_core.training.pretext import PretextSettings, train_pretext
from scan_core.training.selflabel import SelflabelSettings, count_confident, train_selflabel

CPU = torch.device("cpu")
AUGMENT = AugmentSettings(mean=(0.5,), std=(0.25,), hflip=False, crop_min_scale=0.6, cutout_fraction=0.4)
PRETEXT = PretextSettings(backbone="small_cnn", epochs=2, batch_size=16, lr=0.05, temperature=0.5,
                          projection_dim=16, seed=0)
SCAN = ScanSettings(num_clusters=4, num_heads=2, num_neighbors=3, entropy_weight=2.0, epochs=2,
                    batch_size=16, lr=1e-3, seed=0)
SELFLABEL = SelflabelSettings(threshold=0.5, epochs=2, batch_size=16, lr=1e-3, seed=0)


class Interrupted(Exception):
    pass


def _interrupt_after(epoch: int):
    def on_epoch(done: int, record: dict) -> None:
        if done == epoch:
            raise Interrupted(f"killed after epoch {done}")
    return on_epoch


def make_images() -> torch.Tensor:
    """Four blocky patterns plus noise, stored as uint8 [N, H, W, C]."""
    generator = torch.Generator().manual_seed(0)
    patterns = torch.zeros(4, 8, 8)
    patterns[0, :4] = 1.0
    patterns[1, :, :4] = 1.0
    patterns[2, 2:6, 2:6] = 1.0
    patterns[3, ::2] = 1.0
    noisy = 0.7 * patterns[torch.arange(40) % 4] + 0.3 * torch.rand(40, 8, 8, generator=generator)
    return (noisy * 255).round().to(torch.uint8).unsqueeze(-1)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return make_images()


@pytest.fixture(scope="module")
def neighbors(images: torch.Tensor) -> torch.Tensor:
    """Three neighbors per image: the next images of the same pattern (row indices)."""
    rows = torch.arange(40)
    return torch.stack([(rows + 4 * step) % 40 for step in (1, 2, 3)], dim=1)


def _backbone() -> torch.nn.Module:
    torch.manual_seed(123)
    return build_backbone("small_cnn", 1)


def _cluster_model(num_clusters: int = 3) -> ClusteringModel:
    torch.manual_seed(321)
    return ClusteringModel(build_backbone("small_cnn", 1), num_clusters, 1)


def _states_equal(first: torch.nn.Module, second: torch.nn.Module) -> bool:
    a, b = first.state_dict(), second.state_dict()
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


def _no_checkpoint() -> TrainingCheckpoint:
    return TrainingCheckpoint(None, "unused")


# ---------------------------------------------------------------- pretext


@pytest.fixture(scope="module")
def pretext_runs(images: torch.Tensor) -> dict:
    three = PretextSettings(**{**PRETEXT.__dict__, "epochs": 3})
    return {
        "first": train_pretext(images, three, AUGMENT, _no_checkpoint(), CPU, progress=False),
        "second": train_pretext(images, three, AUGMENT, _no_checkpoint(), CPU, progress=False),
        "settings": three,
    }


def test_pretext_history_has_one_finite_record_per_epoch(pretext_runs: dict) -> None:
    model, history = pretext_runs["first"]
    assert [record["epoch"] for record in history] == [1, 2, 3]
    assert all(torch.isfinite(torch.tensor(record["loss"])) for record in history)
    with torch.no_grad():  # on a copy: a forward pass in train mode would move BatchNorm statistics
        assert copy.deepcopy(model).eval()(torch.rand(2, 1, 8, 8)).shape == (2, 16)


def test_pretext_records_the_mean_nt_xent_of_its_steps_at_its_temperature(images, monkeypatch) -> None:
    """Each epoch's recorded loss is the mean over its steps of NT-Xent, written out by hand
    (``tests/scan_core/test_losses.py``) on the projections of that step at the settings'
    temperature (0.3 here, not the default)."""
    from scan_core.training import pretext
    from tests.scan_core.test_losses import _nt_xent_by_hand

    settings = PretextSettings(**{**PRETEXT.__dict__, "epochs": 2, "temperature": 0.3})
    by_hand: list[float] = []
    real_loss = pretext.simclr_loss

    def spy(features, temperature, *args, **kwargs):
        by_hand.append(_nt_xent_by_hand(features.detach().double().numpy(), settings.temperature))
        return real_loss(features, temperature, *args, **kwargs)

    monkeypatch.setattr(pretext, "simclr_loss", spy)
    _, history = train_pretext(images, settings, AUGMENT, _no_checkpoint(), CPU, progress=False)
    steps = len(images) // settings.batch_size  # pretext drops the last, partial batch
    assert len(by_hand) == settings.epochs * steps
    for epoch, record in enumerate(history):
        expected = sum(by_hand[epoch * steps:(epoch + 1) * steps]) / steps
        assert record["loss"] == pytest.approx(expected, rel=1e-5)


def test_pretext_is_deterministic(pretext_runs: dict) -> None:
    (model_a, history_a), (model_b, history_b) = pretext_runs["first"], pretext_runs["second"]
    assert history_a == history_b
    assert _states_equal(model_a, model_b)


def test_pretext_resumes_after_interruption(images: torch.Tensor, pretext_runs: dict, tmp_path: Path) -> None:
    settings = pretext_runs["settings"]
    checkpoint = TrainingCheckpoint(tmp_path / "pretext.pt", "pretext-key")
    with pytest.raises(Interrupted):
        train_pretext(images, settings, AUGMENT, checkpoint, CPU, on_epoch=_interrupt_after(2), progress=False)
    epochs_run = []
    model, history = train_pretext(images, settings, AUGMENT, checkpoint, CPU,
                                   on_epoch=lambda epoch, record: epochs_run.append(epoch), progress=False)
    assert epochs_run == [3]  # only the missing epoch was trained
    reference_model, reference_history = pretext_runs["first"]
    assert history == reference_history
    assert _states_equal(model, reference_model)


def test_pretext_two_epoch_checkpoint_extends_to_three(images: torch.Tensor, tmp_path: Path) -> None:
    checkpoint = TrainingCheckpoint(tmp_path / "pretext.pt", "same-key")
    _, two = train_pretext(images, PRETEXT, AUGMENT, checkpoint, CPU, progress=False)
    three = PretextSettings(**{**PRETEXT.__dict__, "epochs": 3})
    _, history = train_pretext(images, three, AUGMENT, checkpoint, CPU, progress=False)
    assert len(history) == 3
    assert history[:2] == two
    # (The final weights differ from an uninterrupted 3-epoch run by design: the cosine
    # learning-rate schedule depends on the epoch count, which is part of the pipeline's
    # checkpoint key, so the pipeline never resumes across such a change.)


def test_pretext_draws_the_same_whatever_the_prefetch_depth_and_image_store(images, pretext_runs, tmp_path,
                                                                            monkeypatch) -> None:
    """Batches prepared ahead (depth 2) or one at a time (depth 0), from a tensor or from a
    memmapped .npy file: the same draws, hence the same weights."""
    import numpy as np

    import scan_core.training.common as common

    np.save(tmp_path / "images.npy", images.numpy())
    mapped = np.load(tmp_path / "images.npy", mmap_mode="r")
    monkeypatch.setattr(common, "PREFETCH_DEPTH", 0)
    model, history = train_pretext(mapped, pretext_runs["settings"], AUGMENT, _no_checkpoint(), CPU, progress=False)
    reference_model, reference_history = pretext_runs["first"]
    assert history == reference_history
    assert _states_equal(model, reference_model)


def test_inference_reads_any_image_store_in_slices(images, tmp_path) -> None:
    import numpy as np

    np.save(tmp_path / "images.npy", images.numpy())
    model = _cluster_model()
    from_tensor = predict_probabilities(model, images, AUGMENT, 512, CPU)
    from_memmap = predict_probabilities(model, np.load(tmp_path / "images.npy", mmap_mode="r"), AUGMENT, 7, CPU)
    assert from_tensor.shape == (1, len(images), 3)
    assert torch.allclose(from_tensor, from_memmap, atol=1e-6)


# ---------------------------------------------------------------- scan


def _scan(images, neighbors, settings=SCAN, checkpoint=None, on_epoch=None, probe=None):
    return train_scan(_backbone(), images, neighbors, settings, AUGMENT, checkpoint or _no_checkpoint(), CPU,
                      on_epoch=on_epoch, progress=False, probe=probe)


@pytest.fixture(scope="module")
def scan_runs(images: torch.Tensor, neighbors: torch.Tensor) -> dict:
    three = ScanSettings(**{**SCAN.__dict__, "epochs": 3})
    return {"first": _scan(images, neighbors, three), "second": _scan(images, neighbors, three), "settings": three}


def test_scan_history_records_label_free_health_every_epoch(scan_runs: dict) -> None:
    _, history, _ = scan_runs["first"]
    assert [record["epoch"] for record in history] == [1, 2, 3]
    for record in history:
        assert record["loss"] == pytest.approx(record["consistency"] - SCAN.entropy_weight * record["entropy"],
                                               abs=1e-5)
        assert record["head"] in (0, 1)



class RecordingCheckpoint(TrainingCheckpoint):
    """Keeps the weights saved after every epoch (epoch 1 first)."""

    def __init__(self) -> None:
        super().__init__(None, "unused")
        self.saved: list[dict] = []

    def save(self, state: dict) -> None:
        self.saved.append(copy.deepcopy(state["model"]))


def _probabilities_by_hand(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Softmax of every head on the plain normalised images, the model in eval mode."""
    model.eval()
    with torch.no_grad():
        return torch.softmax(model(normalize(to_float(images), AUGMENT)), dim=-1)


def test_scan_history_health_is_that_of_the_epochs_chosen_head(images, neighbors) -> None:
    """Each epoch's neighbor agreement, balance, mean confidence and share above 0.99 are those
    of the head that epoch chose, computed here from the weights saved after the epoch."""
    settings = ScanSettings(**{**SCAN.__dict__, "epochs": 3, "lr": 3e-2})
    checkpoint = RecordingCheckpoint()
    _, history, _ = train_scan(_backbone(), images, neighbors, settings, AUGMENT, checkpoint, CPU, progress=False)
    for record, state in zip(history, checkpoint.saved, strict=True):
        snapshot = ClusteringModel(build_backbone("small_cnn", 1), SCAN.num_clusters, SCAN.num_heads)
        snapshot.load_state_dict(state)
        probabilities = _probabilities_by_hand(snapshot, images)[record["head"]].double()
        confidence, clusters = probabilities.max(dim=1)
        shares = torch.bincount(clusters, minlength=SCAN.num_clusters).double() / len(clusters)
        shares = shares[shares > 0]
        assert record["neighbor_agreement"] == pytest.approx(
            float((clusters[neighbors] == clusters[:, None]).double().mean()), abs=1e-9)
        assert record["size_balance"] == pytest.approx(float(-(shares * shares.log()).sum() / math.log(SCAN.num_clusters)),
                                                  abs=1e-6)
        assert record["mean_confidence"] == pytest.approx(float(confidence.mean()), abs=1e-5)
        assert record["confident_share"] == pytest.approx(float((confidence > 0.99).double().mean()), abs=1e-9)


def _every_head_of_every_epoch(images, neighbors, selection_name: str, score_by_hand) -> tuple:
    """Train 6 epochs recording every checkpoint, and score every head of every epoch by hand
    (not by the code under test)."""
    settings = ScanSettings(**{**SCAN.__dict__, "epochs": 6, "lr": 3e-2, "selection": selection_name})
    checkpoint = RecordingCheckpoint()
    model, history, selection = train_scan(_backbone(), images, neighbors, settings, AUGMENT, checkpoint, CPU,
                                           progress=False)
    snapshots = dict(enumerate(checkpoint.saved, start=1))
    scores = {}
    for epoch, state in snapshots.items():
        snapshot = ClusteringModel(build_backbone("small_cnn", 1), SCAN.num_clusters, SCAN.num_heads)
        snapshot.load_state_dict(state)
        for head, probabilities in enumerate(predict_probabilities(snapshot, images, AUGMENT, 512, CPU)):
            scores[epoch, head] = score_by_hand(probabilities, neighbors)
    assert len(scores) == 6 * 2
    return model, selection, snapshots, scores


def _assert_kept(model, selection, snapshots) -> None:
    assert len(model.heads) == 1
    kept = snapshots[selection["epoch"]]
    for name, value in model.backbone.state_dict().items():
        assert torch.equal(value, kept[f"backbone.{name}"])
    assert torch.equal(model.heads[0].weight, kept[f"heads.{selection['head']}.weight"])


def test_scan_keeps_the_head_and_epoch_with_the_lowest_label_free_loss(images, neighbors) -> None:
    model, selection, snapshots, losses = _every_head_of_every_epoch(images, neighbors, "scan_loss",
                                                                     _scan_loss_by_hand)
    chosen = (selection["epoch"], selection["head"])
    # (On this data the lowest beats all others by > 0.4; the tolerance only absorbs rounding ties.)
    assert losses[chosen] <= min(losses.values()) + 1e-5, (chosen, sorted(losses.items(), key=lambda kv: kv[1]))
    assert selection["criterion"] == "scan_loss" and -selection["score"] == pytest.approx(losses[chosen], abs=1e-5)
    _assert_kept(model, selection, snapshots)
    # The kept model scores exactly the criterion recorded for it.
    (probabilities,) = predict_probabilities(model, images, AUGMENT, 512, CPU)
    assert _scan_loss_by_hand(probabilities, neighbors) == pytest.approx(-selection["score"], abs=1e-5)


def test_scan_keeps_the_head_and_epoch_with_the_highest_modularity(images, neighbors) -> None:
    model, selection, snapshots, modularity = _every_head_of_every_epoch(images, neighbors, "modularity",
                                                                         _modularity_by_hand)
    chosen = (selection["epoch"], selection["head"])
    assert modularity[chosen] >= max(modularity.values()) - 1e-9, (chosen, modularity)
    assert selection["criterion"] == "modularity" and selection["score"] == pytest.approx(modularity[chosen])
    assert selection["entropy_weight"] == SCAN.entropy_weight
    _assert_kept(model, selection, snapshots)
    (probabilities,) = predict_probabilities(model, images, AUGMENT, 512, CPU)
    assert _modularity_by_hand(probabilities, neighbors) == pytest.approx(selection["score"])


def _modularity_by_hand(probabilities: torch.Tensor, neighbors: torch.Tensor) -> float:
    """Pairs (i, j) in one cluster over all pairs, minus sum over clusters of (share of anchors
    in it) x (share of neighbor slots in it), counted in plain Python."""
    clusters = probabilities.argmax(dim=1).tolist()
    pairs = [(clusters[i], clusters[int(j)]) for i in range(len(clusters)) for j in neighbors[i]]
    inside = sum(a == b for a, b in pairs) / len(pairs)
    chance = sum((clusters.count(c) / len(clusters)) * (sum(b == c for _, b in pairs) / len(pairs))
                 for c in set(clusters))
    return inside - chance


def _scan_loss_by_hand(probabilities: torch.Tensor, neighbors: torch.Tensor) -> float:
    """SCAN's selection criterion of one head, one image pair at a time in float64: mean
    -log(p_i . p_j) over every mined pair, minus the entropy (weight 1, the authors'
    selection weight) of the mean cluster distribution."""
    p = probabilities.double().tolist()
    pairs = [(i, int(j)) for i in range(len(p)) for j in neighbors[i]]
    consistency = sum(-math.log(max(sum(a * b for a, b in zip(p[i], p[j])), 1e-8)) for i, j in pairs) / len(pairs)
    mean = [sum(row[c] for row in p) / len(p) for c in range(len(p[0]))]
    entropy = -sum(m * math.log(max(m, 1e-8)) for m in mean)
    return consistency - entropy


def test_scan_probe_reports_without_changing_the_choice(images, neighbors, scan_runs: dict) -> None:
    seen = []
    model, history, selection = _scan(images, neighbors, scan_runs["settings"],
                                      probe=lambda probabilities: seen.append(probabilities.shape) or {"probe": 1.0})
    reference_model, reference_history, reference_selection = scan_runs["first"]
    assert seen == [(len(images), SCAN.num_clusters)] * 3
    assert [record.pop("probe") for record in history] == [1.0] * 3
    assert history == reference_history and selection == reference_selection
    assert _states_equal(model, reference_model)


def test_head_losses_match_a_hand_computation_in_any_chunk_size() -> None:
    probabilities = torch.tensor([[[0.9, 0.1], [0.8, 0.2], [0.1, 0.9]]])  # one head, 3 images
    neighbors = torch.tensor([[1], [0], [0]])
    agreements = [0.9 * 0.8 + 0.1 * 0.2, 0.8 * 0.9 + 0.2 * 0.1, 0.1 * 0.9 + 0.9 * 0.1]
    consistency = -sum(torch.log(torch.tensor(agreements))) / 3
    mean = torch.tensor([1.8 / 3, 1.2 / 3])
    entropy = -(mean * mean.log()).sum()
    for chunk_size in (1, 2, 4096):
        value = head_losses(probabilities, neighbors, entropy_weight=1.0, chunk_size=chunk_size)
        assert value.item() == pytest.approx((consistency - entropy).item(), abs=1e-6)
    assert head_losses(probabilities, neighbors, entropy_weight=5.0).item() == pytest.approx(
        (consistency - 5 * entropy).item(), abs=1e-6)


def test_scan_is_deterministic(scan_runs: dict) -> None:
    (model_a, history_a, selection_a), (model_b, history_b, selection_b) = scan_runs["first"], scan_runs["second"]
    assert history_a == history_b
    assert selection_a == selection_b
    assert _states_equal(model_a, model_b)


def test_scan_resumes_after_interruption(images, neighbors, scan_runs: dict, tmp_path: Path) -> None:
    settings = scan_runs["settings"]
    checkpoint = TrainingCheckpoint(tmp_path / "scan.pt", "scan-key")
    with pytest.raises(Interrupted):
        _scan(images, neighbors, settings, checkpoint, _interrupt_after(2))
    model, history, selection = _scan(images, neighbors, settings, checkpoint)
    reference_model, reference_history, reference_selection = scan_runs["first"]
    assert history == reference_history
    assert selection == reference_selection
    assert _states_equal(model, reference_model)


def test_scan_two_epoch_checkpoint_extends_to_three(images, neighbors, scan_runs: dict, tmp_path: Path) -> None:
    checkpoint = TrainingCheckpoint(tmp_path / "scan.pt", "same-key")
    _, two, _ = _scan(images, neighbors, SCAN, checkpoint)
    model, history, _ = _scan(images, neighbors, scan_runs["settings"], checkpoint)
    reference_model, reference_history, _ = scan_runs["first"]
    assert len(two) == 2 and len(history) == 3
    assert history[:2] == two
    assert history == reference_history
    assert _states_equal(model, reference_model)


def test_scan_ignores_checkpoint_of_other_key(images, neighbors, scan_runs: dict, tmp_path: Path) -> None:
    path = tmp_path / "scan.pt"
    _scan(images, neighbors, SCAN, TrainingCheckpoint(path, "old-params"))
    model, history, _ = _scan(images, neighbors, scan_runs["settings"], TrainingCheckpoint(path, "new-params"))
    reference_model, reference_history, _ = scan_runs["first"]
    assert history == reference_history
    assert _states_equal(model, reference_model)


def test_scan_frozen_backbone_stays_unchanged(images, neighbors) -> None:
    backbone = _backbone()
    before = copy.deepcopy(backbone.state_dict())
    settings = ScanSettings(**{**SCAN.__dict__, "epochs": 1, "update_backbone": False})
    model, _, _ = train_scan(backbone, images, neighbors, settings, AUGMENT, _no_checkpoint(), CPU, progress=False)
    after = model.backbone.state_dict()
    assert all(torch.equal(before[key], after[key]) for key in before)
    trained, _, _ = _scan(images, neighbors, settings.__class__(**{**settings.__dict__, "update_backbone": True}))
    assert not all(torch.equal(before[key], trained.backbone.state_dict()[key]) for key in before)


@pytest.mark.parametrize("augmentation", ["strong", "simclr"])
def test_scan_trains_on_the_view_its_settings_name(images, neighbors, augmentation, monkeypatch) -> None:
    import scan_core.training.clustering as clustering

    calls = {name: 0 for name in clustering.VIEWS}

    def spy(name, view):
        def counted(*args, **kwargs):
            calls[name] += 1
            return view(*args, **kwargs)
        return counted

    monkeypatch.setattr(clustering, "VIEWS", {name: spy(name, view) for name, view in clustering.VIEWS.items()})
    settings = ScanSettings(**{**SCAN.__dict__, "epochs": 1, "augmentation": augmentation})
    _scan(images, neighbors, settings)
    assert calls[augmentation] > 0 and sum(calls.values()) == calls[augmentation]


class CountingImages:
    """A uint8 image store that counts the rows read through it (``read_rows`` slices it)."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images, self.rows_read = images, 0
        self.shape, self.dtype = images.shape, images.dtype

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, rows):
        picked = self.images[rows]
        self.rows_read += len(picked)
        return picked


def test_scan_on_cached_features_reads_no_image_per_epoch(images, neighbors) -> None:
    """augmentation none: the frozen backbone's features are computed once, and the k-means
    warm start, the epochs and the selection pass after each reuse them: no image read again."""
    from scan_core.training.warm_start import kmeans_partitions

    settings = ScanSettings(**{**SCAN.__dict__, "augmentation": "none", "update_backbone": False, "lr": 1e-2})
    initial = kmeans_partitions(images.flatten(1).float().numpy(), SCAN.num_clusters, SCAN.num_heads, 0)
    counted = {}
    for epochs in (1, 4):
        store = CountingImages(images)
        train_scan(_backbone(), store, neighbors, ScanSettings(**{**settings.__dict__, "epochs": epochs}), AUGMENT,
                   _no_checkpoint(), CPU, progress=False, initial_clusters=initial)
        counted[epochs] = store.rows_read
    assert counted[1] == counted[4] == len(images)


def test_scan_on_cached_features_trains_the_heads_the_images_give(images, neighbors) -> None:
    """The heads trained on cached features predict on the plain images exactly what the
    selection saw, and the SCAN loss they were chosen by is below the untrained heads'."""
    settings = ScanSettings(**{**SCAN.__dict__, "epochs": 40, "augmentation": "none", "update_backbone": False,
                               "lr": 5e-2, "selection": "scan_loss"})
    model, history, selection = train_scan(_backbone(), images, neighbors, settings, AUGMENT, _no_checkpoint(), CPU,
                                           progress=False)
    probabilities = predict_probabilities(model, images, AUGMENT, 512, CPU)
    assert float(head_losses(probabilities, neighbors)[0]) == pytest.approx(-selection["score"], abs=1e-5)
    torch.manual_seed(settings.seed)
    untrained = ClusteringModel(_backbone(), SCAN.num_clusters, SCAN.num_heads)
    before = head_losses(predict_probabilities(untrained, images, AUGMENT, 512, CPU), neighbors).min()
    assert -selection["score"] < float(before) - 0.05


def test_scan_with_cluster_sizes_trains_and_selects_toward_those_sizes(images, neighbors) -> None:
    """Asked for sizes 1 : 5 : 1 : 1, the kept head's sizes are closer to them (in the size term)
    than those of a run asked for equal sizes, and it was chosen by the size term it trained with.
    (The four patterns here are equal and their neighbors never cross, so the margin is small.)"""
    settings = ScanSettings(**{**SCAN.__dict__, "epochs": 20, "augmentation": "none", "update_backbone": False,
                               "lr": 5e-2, "selection": "scan_loss"})
    profile = requested_sizes(ScanSettings(**{**settings.__dict__, "cluster_sizes": (1.0, 5.0, 1.0, 1.0)}))
    distance = {}
    for sizes in ("equal", (1.0, 5.0, 1.0, 1.0)):
        chosen = ScanSettings(**{**settings.__dict__, "cluster_sizes": sizes})
        model, _, selection = train_scan(_backbone(), images, neighbors, chosen, AUGMENT, _no_checkpoint(), CPU,
                                         progress=False)
        probabilities = predict_probabilities(model, images, AUGMENT, 512, CPU)
        assert float(head_losses(probabilities, neighbors, size_profile=requested_sizes(chosen))[0]) == pytest.approx(
            -selection["score"], abs=1e-5)
        distance[sizes] = float(size_penalty(probabilities[0].mean(dim=0), profile))
    assert distance[(1.0, 5.0, 1.0, 1.0)] < distance["equal"] - 0.01


def test_cluster_sizes_become_a_sorted_profile_and_must_be_one_per_cluster() -> None:
    settings = ScanSettings(**{**SCAN.__dict__, "cluster_sizes": (30.0, 10.0, 20.0, 40.0)})
    torch.testing.assert_close(requested_sizes(settings), torch.tensor([0.1, 0.2, 0.3, 0.4]))
    assert requested_sizes(SCAN) is None
    with pytest.raises(ValueError, match="4 positive sizes"):
        requested_sizes(ScanSettings(**{**SCAN.__dict__, "cluster_sizes": (1.0, 2.0)}))


def test_start_sizes_are_the_starting_partitions_sorted_sizes_averaged_over_heads() -> None:
    settings = ScanSettings(**{**SCAN.__dict__, "cluster_sizes": "start"})
    partitions = torch.tensor([[0, 0, 0, 0, 0, 0, 1, 1, 2, 3],    # sizes 6, 2, 1, 1
                               [3, 3, 3, 3, 2, 2, 2, 2, 1, 1]])   # sizes 0, 2, 4, 4: the empty one asks for 1
    torch.testing.assert_close(requested_sizes(settings, partitions),
                               torch.tensor([1.0, 1.5, 3.0, 5.0]) / 10.5)
    with pytest.raises(ValueError, match="cluster_sizes 'start'.*init 'kmeans' or 'spectral'"):
        requested_sizes(settings)


def test_scan_asked_for_its_start_sizes_trains_as_if_asked_for_them_by_hand(images, neighbors) -> None:
    """``start`` is the sizes of the starting partitions, asked as a user would give them, and the
    selection records them."""
    settings = ScanSettings(**{**SCAN.__dict__, "epochs": 3, "augmentation": "none", "update_backbone": False,
                               "lr": 5e-2, "num_heads": 1})
    start = (torch.arange(len(images)) % 4)[None].clone()
    start[0, :12][start[0, :12] == 3] = 0  # sizes 13, 10, 10, 7
    results = {}
    for sizes in ("start", (13.0, 10.0, 10.0, 7.0)):
        chosen = ScanSettings(**{**settings.__dict__, "cluster_sizes": sizes})
        model, _, selection = train_scan(_backbone(), images, neighbors, chosen, AUGMENT, _no_checkpoint(), CPU,
                                         progress=False, initial_clusters=start)
        results[sizes == "start"] = (predict_probabilities(model, images, AUGMENT, 512, CPU), selection)
    torch.testing.assert_close(results[True][0], results[False][0])
    assert results[True][1]["score"] == pytest.approx(results[False][1]["score"])
    assert results[True][1]["cluster_sizes_asked"] == pytest.approx([0.175, 0.25, 0.25, 0.325], abs=1e-6)


def test_scan_on_cached_features_needs_a_frozen_backbone(images, neighbors) -> None:
    settings = ScanSettings(**{**SCAN.__dict__, "augmentation": "none", "update_backbone": True})
    with pytest.raises(ValueError, match="frozen"):
        _scan(images, neighbors, settings)


# ---------------------------------------------------------------- selflabel


def _threshold_for(model: ClusteringModel, images: torch.Tensor) -> float:
    """The median initial confidence: about half the images start above it."""
    confidence = predict_probabilities(model, images, AUGMENT, 512, CPU)[0].max(dim=1).values
    return float(confidence.median())


def _selflabel(images, settings, checkpoint=None, on_epoch=None):
    return train_selflabel(_cluster_model(), images, settings, AUGMENT, checkpoint or _no_checkpoint(), CPU,
                           on_epoch=on_epoch, progress=False)


@pytest.fixture(scope="module")
def selflabel_runs(images: torch.Tensor) -> dict:
    threshold = _threshold_for(_cluster_model(), images)
    three = SelflabelSettings(**{**SELFLABEL.__dict__, "epochs": 3, "threshold": threshold})
    model = _cluster_model()
    snapshots = {0: copy.deepcopy(model.state_dict())}

    def snapshot(epoch: int, record: dict) -> None:
        snapshots[epoch] = copy.deepcopy(model.state_dict())

    first = train_selflabel(model, images, three, AUGMENT, _no_checkpoint(), CPU, on_epoch=snapshot, progress=False)
    return {"first": first, "second": _selflabel(images, three), "settings": three, "snapshots": snapshots}


def test_selflabel_history_and_best_epoch(images: torch.Tensor, selflabel_runs: dict) -> None:
    """The confident counts are counted here from the weights after every epoch (not read from
    the history the loop wrote); the model kept is the first epoch with the most of them."""
    settings = selflabel_runs["settings"]
    model, history = selflabel_runs["first"]
    assert [record["epoch"] for record in history] == [1, 2, 3]
    assert all(torch.isfinite(torch.tensor(record["loss"])) for record in history)
    counts = {}
    for epoch, state in selflabel_runs["snapshots"].items():  # epoch 0: the model as given
        snapshot = _cluster_model()
        snapshot.load_state_dict(state)
        counts[epoch] = int((_probabilities_by_hand(snapshot, images)[0].max(dim=1).values > settings.threshold).sum())
    assert 0 < counts[0] < len(images)
    assert [record["confident"] for record in history] == [counts[epoch] for epoch in (1, 2, 3)]
    best_epoch = max(counts, key=lambda epoch: (counts[epoch], -epoch))
    expected = selflabel_runs["snapshots"][best_epoch]
    assert all(torch.equal(expected[key], value) for key, value in model.state_dict().items())


def test_selflabel_takes_pseudo_labels_from_the_plain_image_and_learns_them_on_the_strong_view(images) -> None:
    """The batch a step sees is (plain, strong); the pass without gradient, in eval mode, gets
    the plain normalised images, the pass with gradient, in train mode, the strong view drawn
    from the step's generator, and the loss is the confidence cross-entropy of those two.
    Swapping the views anywhere (in the batch or in the step) fails here."""
    from scan_core.augment.strong import strong_view
    from scan_core.losses.confidence import confidence_ce
    from scan_core.training.selflabel import selflabel_step, selflabel_views

    model = _cluster_model()
    seen: list[tuple[bool, bool, torch.Tensor]] = []
    model.register_forward_pre_hook(lambda module, inputs: seen.append(
        (module.training, torch.is_grad_enabled(), inputs[0].detach().clone())))
    rows = torch.arange(8)
    views = selflabel_views(images, rows, AUGMENT, torch.Generator().manual_seed(5), CPU)
    plain = normalize(to_float(images[rows]), AUGMENT)
    strong = strong_view(to_float(images[rows]), AUGMENT, torch.Generator().manual_seed(5))
    torch.testing.assert_close(views[:, 0], plain, rtol=0, atol=0)
    torch.testing.assert_close(views[:, 1], strong, rtol=0, atol=0)
    assert not torch.allclose(plain, strong)
    loss, _ = selflabel_step(model, views, 0.3, True)
    (label_pass, label_grad, label_input), (learn_pass, learn_grad, learn_input) = seen
    assert (label_pass, label_grad) == (False, False) and (learn_pass, learn_grad) == (True, True)
    torch.testing.assert_close(label_input, plain, rtol=0, atol=0)
    torch.testing.assert_close(learn_input, strong, rtol=0, atol=0)
    seen.clear()
    model.eval()
    with torch.no_grad():
        plain_logits = model(plain)[0]
    model.train()
    expected, _ = confidence_ce(plain_logits, model(strong)[0], 0.3, True)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_selflabel_step_with_a_fixed_teacher_learns_its_labels_in_one_pass(images) -> None:
    """Given a teacher's logits the step runs the model once, on the strong view in train mode,
    and its loss is the confidence cross-entropy of the teacher against that pass."""
    from scan_core.losses.confidence import confidence_ce
    from scan_core.training.selflabel import selflabel_step, selflabel_views

    model = _cluster_model()
    seen: list[tuple[bool, torch.Tensor]] = []
    model.register_forward_pre_hook(lambda module, inputs: seen.append((module.training, inputs[0].detach().clone())))
    views = selflabel_views(images, torch.arange(8), AUGMENT, torch.Generator().manual_seed(5), CPU)
    teacher = torch.tensor([[4.0, 0.0, 0.0], [0.0, 0.0, 4.0]]).repeat(4, 1)
    loss, count = selflabel_step(model, views, 0.9, True, fixed_logits=teacher)
    assert len(seen) == 1 and seen[0][0] and torch.equal(seen[0][1], views[:, 1])
    expected, expected_count = confidence_ce(teacher, model(views[:, 1])[0], 0.9, True)
    assert (count, expected_count) == (8, 8)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    strong_only = selflabel_views(images, torch.arange(8), AUGMENT, torch.Generator().manual_seed(5), CPU, plain=False)
    assert strong_only.shape[1] == 1 and torch.equal(strong_only[:, 0], views[:, 1])
    alone, _ = selflabel_step(model, strong_only, 0.9, True, fixed_logits=teacher)
    assert alone.item() == pytest.approx(expected.item(), rel=1e-5)


def test_selflabel_with_a_fixed_teacher_keeps_the_first_pseudo_labels_every_epoch(images, monkeypatch) -> None:
    """teacher fixed: every epoch hands each image the log-probabilities the model gave it
    before training, while the model itself moves; teacher online hands none (the step labels
    with the model being trained)."""
    import scan_core.training.selflabel as selflabel

    handed: list[torch.Tensor | None] = []
    views_per_image: set[int] = set()
    step = selflabel.selflabel_step

    def recording_step(network, views, *args, **kwargs):
        handed.append(kwargs.get("fixed_logits"))
        views_per_image.add(views.shape[1])
        return step(network, views, *args, **kwargs)

    monkeypatch.setattr(selflabel, "selflabel_step", recording_step)
    before = _probabilities_by_hand(_cluster_model(), images)[0]
    settings = SelflabelSettings(**{**SELFLABEL.__dict__, "epochs": 3, "patience": 10,
                                    "threshold": _threshold_for(_cluster_model(), images), "teacher": "fixed"})
    model, history = train_selflabel(_cluster_model(), images, settings, AUGMENT, _no_checkpoint(), CPU, progress=False)
    steps_per_epoch = math.ceil(len(images) / settings.batch_size)
    assert len(history) == 3 and len(handed) == 3 * steps_per_epoch
    expected = torch.sort(before.clamp_min(1e-12).log(), dim=0).values
    for epoch in range(3):
        epoch_logits = torch.cat(handed[epoch * steps_per_epoch:(epoch + 1) * steps_per_epoch])
        torch.testing.assert_close(torch.sort(epoch_logits, dim=0).values, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(_probabilities_by_hand(model, images)[0], before, atol=1e-3)
    assert views_per_image == {1}  # the teacher labeled the plain images: only strong views are made
    handed.clear(), views_per_image.clear()
    train_selflabel(_cluster_model(), images, SelflabelSettings(**{**settings.__dict__, "teacher": "online"}), AUGMENT,
                    _no_checkpoint(), CPU, progress=False)
    assert handed and all(logits is None for logits in handed)
    assert views_per_image == {2}


@pytest.mark.parametrize("teacher, consensus_passes", [("fixed", 1), ("online", 3)])
def test_neighbor_consensus_is_computed_once_under_a_fixed_teacher(images, monkeypatch, teacher: str,
                                                                   consensus_passes: int) -> None:
    """A fixed teacher's clusters never change, so neither does which images their neighbors
    trust; an online teacher's are read again every epoch."""
    import scan_core.training.selflabel as selflabel

    calls: list[int] = []
    trusted_images = selflabel.trusted_images
    monkeypatch.setattr(selflabel, "trusted_images",
                        lambda *args: calls.append(1) or trusted_images(*args))
    settings = SelflabelSettings(**{**SELFLABEL.__dict__, "epochs": 3, "patience": 10, "teacher": teacher,
                                    "threshold": _threshold_for(_cluster_model(), images), "neighbor_consensus": 0.5})
    neighbors = torch.arange(len(images))[:, None].repeat(1, 2)
    _, history = train_selflabel(_cluster_model(), images, settings, AUGMENT, _no_checkpoint(), CPU, progress=False,
                                 neighbors=neighbors)
    assert len(history) == 3 and len(calls) == consensus_passes


def test_trusted_images_are_those_whose_neighbors_mostly_share_their_cluster() -> None:
    from scan_core.training.selflabel import trusted_images

    probabilities = torch.eye(3)[[0, 0, 1, 1, 2]]  # clusters 0 0 1 1 2
    neighbors = torch.tensor([[1, 2], [0, 1], [3, 4], [0, 1], [4, 4]])
    # shares of neighbors in the image's own cluster: 1/2, 2/2, 1/2, 0/2, 2/2
    assert trusted_images(probabilities, neighbors, 0.5).tolist() == [True, True, True, False, True]
    assert trusted_images(probabilities, neighbors, 1.0).tolist() == [False, True, False, False, True]
    assert trusted_images(probabilities, neighbors, 0.0).all()


def test_selflabel_with_neighbor_consensus_learns_only_from_trusted_images(images: torch.Tensor,
                                                                           monkeypatch) -> None:
    """Neighbors that are the image itself trust every image: the run equals the one without
    the filter. With no image trusted (the untrained model here puts every image in one cluster,
    so the trust is forced) no step changes the weights, however confident the images are."""
    import scan_core.training.selflabel as selflabel

    threshold = _threshold_for(_cluster_model(), images)
    # No weight decay: with it Adam moves the weights even where the loss is zero.
    settings = SelflabelSettings(**{**SELFLABEL.__dict__, "threshold": threshold, "neighbor_consensus": 1.0,
                                    "weight_decay": 0.0})
    plain = SelflabelSettings(**{**settings.__dict__, "neighbor_consensus": 0.0})
    themselves = torch.arange(len(images))[:, None]
    filtered, filtered_history = train_selflabel(_cluster_model(), images, settings, AUGMENT, _no_checkpoint(), CPU,
                                                 progress=False, neighbors=themselves)
    reference, reference_history = train_selflabel(_cluster_model(), images, plain, AUGMENT, _no_checkpoint(), CPU,
                                                   progress=False)
    assert _states_equal(filtered, reference)
    assert [record["confident"] for record in filtered_history] == [record["confident"] for record in reference_history]
    assert [record["trusted"] for record in filtered_history] == [len(images)] * len(filtered_history)
    monkeypatch.setattr(selflabel, "trusted_images", lambda probabilities, *_: torch.zeros(len(probabilities),
                                                                                          dtype=torch.bool))
    before = _cluster_model().state_dict()
    untouched, history = train_selflabel(_cluster_model(), images, settings, AUGMENT, _no_checkpoint(), CPU,
                                         progress=False, neighbors=themselves)
    assert history and [record["trusted"] for record in history] == [0] * len(history)
    assert all(torch.equal(before[key], value) for key, value in untouched.state_dict().items()
               if "running" not in key and "num_batches" not in key)
    with pytest.raises(ValueError, match="neighbors"):
        train_selflabel(_cluster_model(), images, settings, AUGMENT, _no_checkpoint(), CPU, progress=False)


def test_selflabel_is_deterministic(selflabel_runs: dict) -> None:
    (model_a, history_a), (model_b, history_b) = selflabel_runs["first"], selflabel_runs["second"]
    assert history_a == history_b
    assert _states_equal(model_a, model_b)


def test_selflabel_resumes_after_interruption(images, selflabel_runs: dict, tmp_path: Path) -> None:
    settings = selflabel_runs["settings"]
    checkpoint = TrainingCheckpoint(tmp_path / "selflabel.pt", "selflabel-key")
    with pytest.raises(Interrupted):
        _selflabel(images, settings, checkpoint, _interrupt_after(2))
    model, history = _selflabel(images, settings, checkpoint)
    reference_model, reference_history = selflabel_runs["first"]
    assert history == reference_history
    assert _states_equal(model, reference_model)


def test_selflabel_two_epoch_checkpoint_extends_to_three(images, selflabel_runs: dict, tmp_path: Path) -> None:
    three = selflabel_runs["settings"]
    two_epochs = SelflabelSettings(**{**three.__dict__, "epochs": 2})
    checkpoint = TrainingCheckpoint(tmp_path / "selflabel.pt", "same-key")
    _, two = _selflabel(images, two_epochs, checkpoint)
    model, history = _selflabel(images, three, checkpoint)
    reference_model, reference_history = selflabel_runs["first"]
    assert len(two) == 2 and history[:2] == two
    assert history == reference_history
    assert _states_equal(model, reference_model)


def test_selflabel_without_confident_images_returns_model_unchanged(images: torch.Tensor) -> None:
    model = _cluster_model(num_clusters=10)
    before = copy.deepcopy(model.state_dict())
    settings = SelflabelSettings(**{**SELFLABEL.__dict__, "threshold": 0.999999})
    returned, history = train_selflabel(model, images, settings, AUGMENT, _no_checkpoint(), CPU, progress=False)
    assert history == []
    after = returned.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[key], after[key]) for key in before)


def test_diverging_loss_stops_naming_stage_epoch_step_and_keeps_last_checkpoint(
    images: torch.Tensor, tmp_path: Path
) -> None:
    from dataclasses import replace

    from scan_core.checkpoint import load_checkpoint
    from scan_core.training.common import NonFiniteLossError

    checkpoint = TrainingCheckpoint(tmp_path / "pretext.pt", key="same-run")
    train_pretext(images, replace(PRETEXT, epochs=1), AUGMENT, checkpoint, CPU, progress=False)
    good_state = load_checkpoint(tmp_path / "pretext.pt")

    with pytest.raises(NonFiniteLossError) as raised:
        train_pretext(images, replace(PRETEXT, epochs=3, lr=1e30), AUGMENT, checkpoint, CPU, progress=False)
    message = str(raised.value)
    assert message.startswith("pretext:") and "epoch 2, step" in message and "pretext.lr" in message
    kept = load_checkpoint(tmp_path / "pretext.pt")
    assert kept["epoch"] == good_state["epoch"] == 0
    assert all(torch.equal(kept["model"][name], value) for name, value in good_state["model"].items())


def test_selflabel_stops_after_patience_epochs_without_a_new_confident_maximum(images: torch.Tensor) -> None:
    model = _cluster_model()
    threshold = _threshold_for(model, images)
    settings = SelflabelSettings(**{**SELFLABEL.__dict__, "epochs": 40, "threshold": threshold, "patience": 2,
                                    "lr": 1e-6})
    _, history = train_selflabel(model, images, settings, AUGMENT, _no_checkpoint(), CPU, progress=False)
    best, last_improvement = count_confident(_cluster_model(), images, AUGMENT, threshold, CPU), 0
    for record in history:
        if record["confident"] > best:
            best, last_improvement = record["confident"], record["epoch"]
    assert len(history) < settings.epochs
    assert len(history) == last_improvement + settings.patience


# ---------------------------------------------------------------- CUDA (pytest -m gpu)


@pytest.mark.gpu
def test_each_stage_trains_on_cuda(images, neighbors) -> None:
    """bf16 autocast, channels_last and device-side views: every loop runs and stays finite."""
    cuda = torch.device("cuda")
    model, history = train_pretext(images, PRETEXT, AUGMENT, _no_checkpoint(), cuda, progress=False)
    assert next(model.parameters()).is_cuda and all(math.isfinite(record["loss"]) for record in history)
    model, history, selection = train_scan(_backbone(), images, neighbors, SCAN, AUGMENT, _no_checkpoint(), cuda,
                                           progress=False)
    assert all(math.isfinite(record["loss"]) for record in history) and selection["head"] in (0, 1)
    threshold = _threshold_for(_cluster_model(), images)
    settings = SelflabelSettings(**{**SELFLABEL.__dict__, "threshold": threshold})
    model, history = train_selflabel(_cluster_model(), images, settings, AUGMENT, _no_checkpoint(), cuda,
                                     progress=False)
    assert all(math.isfinite(record["loss"]) for record in history)


@pytest.mark.gpu
@pytest.mark.parametrize("stage", ["pretext", "scan", "selflabel"])
def test_one_step_on_cuda_follows_the_cpu(images, neighbors, stage: str) -> None:
    """The same views and weights give, under bf16 autocast on CUDA, the CPU's loss within 3 %
    and gradients pointing the same way (cosine > 0.98)."""
    from functools import partial

    from scan_core.training.clustering import VIEWS, scan_step, scan_views
    from scan_core.training.common import place
    from scan_core.training.pretext import pretext_step, pretext_views
    from scan_core.training.selflabel import selflabel_step, selflabel_views

    rows, generator = torch.arange(16), torch.Generator().manual_seed(0)
    if stage == "pretext":
        torch.manual_seed(0)
        from scan_core.models import ContrastiveModel
        model = ContrastiveModel(build_backbone("small_cnn", 1), 16)
        views = pretext_views(images, rows, AUGMENT, generator, CPU)
        step = partial(pretext_step, temperature=0.5)
    elif stage == "scan":
        model = ClusteringModel(_backbone(), 4, 2)
        views = scan_views(images, neighbors, rows, VIEWS["strong"], AUGMENT, generator, CPU)
        step = lambda network, batch: scan_step(network, batch, 2.0)[0]  # noqa: E731
    else:
        model = _cluster_model()
        views = selflabel_views(images, rows, AUGMENT, generator, CPU)
        step = lambda network, batch: selflabel_step(network, batch, 0.0, True)[0]  # noqa: E731
    on_cuda = place(copy.deepcopy(model), torch.device("cuda"))
    losses, gradients = [], []
    for network, batch in ((model, views), (on_cuda, views.cuda())):
        loss = step(network, batch)
        loss.backward()
        losses.append(loss.item())
        gradients.append(torch.cat([p.grad.float().cpu().flatten() for p in network.parameters()]))
    assert losses[1] == pytest.approx(losses[0], rel=3e-2)
    assert float(torch.nn.functional.cosine_similarity(gradients[0], gradients[1], dim=0)) > 0.98
