"""Two processes (gloo, the stage's own launcher) compute what one process computes on the
same global batch: the gradients of one step of each stage, BatchNorm over the global batch,
and a short training run (the launch path of ``train_pretext(processes=2)``: one launch runs
everything, since starting processes is what takes time here).

Batches of 7 and 9 images are split 4 + 3 and 5 + 4, so uneven shards are covered too.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import torch
from torch import nn

from scan_core.augment.settings import AugmentSettings
from scan_core.checkpoint import TrainingCheckpoint
from scan_core.collectives import SINGLE, GlobalBatchNorm, Group, global_batchnorm
from scan_core.models import ClusteringModel, ContrastiveModel, build_backbone
from scan_core.training.clustering import VIEWS, scan_step, scan_views
from scan_core.training.common import epoch_batches, predict_probabilities
from scan_core.training.multiprocess import EpochRelay, describe, launch, parallel, restore_state
from scan_core.training.pretext import PretextSettings, _pretext_process, pretext_step, pretext_views, train_pretext
from scan_core.training.selflabel import selflabel_step, selflabel_views

CPU = torch.device("cpu")
AUGMENT = AugmentSettings(mean=(0.5,), std=(0.25,), hflip=True, crop_min_scale=0.5, cutout_fraction=0.4)
TOLERANCE = 1e-4


def _images() -> torch.Tensor:
    generator = torch.Generator().manual_seed(5)
    return torch.randint(0, 256, (24, 8, 8, 1), generator=generator, dtype=torch.uint8)


def _neighbors() -> torch.Tensor:
    rows = torch.arange(24)
    return torch.stack([(rows + step) % 24 for step in (1, 2, 3)], dim=1)


def _seeded(build):
    torch.manual_seed(11)
    return build()


def _contrastive() -> nn.Module:
    return ContrastiveModel(build_backbone("small_cnn", 1), 16)


def _clustering(heads: int) -> nn.Module:
    return ClusteringModel(build_backbone("small_cnn", 1), 4, heads)


def _first_batch(produce, count: int, batch: int, drop_last: bool, group: Group) -> torch.Tensor:
    """This process's rows of the first batch of an epoch, drawn as training draws them."""
    generator = torch.Generator().manual_seed(3)
    return next(iter(epoch_batches(count, batch, generator, drop_last, partial(produce, generator=generator), group)))


def _gradients(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: parameter.grad.clone() for name, parameter in model.named_parameters()}


def _one_step_each(group: Group, device: torch.device, threshold: float) -> dict[str, object]:
    """One step of each stage in this process of ``group``: the gradients (averaged by DDP
    where there are several processes) and the loss each stage reports."""
    images, neighbors, results = _images(), _neighbors(), {}

    # (Each DDP wrapper is kept until after backward: a collected one averages nothing.)
    model = _seeded(_contrastive)
    network = parallel(model, group, device)
    produce = partial(pretext_views, images, augment=AUGMENT, device=device)
    loss = pretext_step(network, _first_batch(produce, 24, 7, True, group), 0.5, group)
    loss.backward()
    results["pretext"] = (_gradients(model), float(group.mean(loss.detach())))

    model = _seeded(partial(_clustering, 2))
    network = parallel(model, group, device)
    produce = partial(scan_views, images, neighbors, view=VIEWS["strong"], augment=AUGMENT, device=device)
    loss, terms = scan_step(network, _first_batch(produce, 24, 7, True, group), 2.0, group)
    loss.backward()
    results["scan"] = (_gradients(model), group.mean(terms).tolist())

    model = _seeded(partial(_clustering, 1))
    network = parallel(model, group, device)
    produce = partial(selflabel_views, images, augment=AUGMENT, device=device)
    loss, count = selflabel_step(network, _first_batch(produce, 24, 9, False, group), threshold, True, group)
    loss.backward()
    results["selflabel"] = (_gradients(model), (float(group.mean(loss.detach())), count))
    return results


def _batchnorm(group: Group, device: torch.device) -> dict[str, torch.Tensor]:
    """Two training passes of a BatchNorm over the global batch (sharded when ``group`` has
    several processes): outputs, input and weight gradients, running statistics."""
    generator = torch.Generator().manual_seed(9)
    inputs = [torch.randn(7, 3, 4, 4, generator=generator) * 3 + 1 for _ in range(2)]
    upstream = torch.randn(7, 3, 4, 4, generator=generator)
    norm = nn.BatchNorm2d(3)
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([0.5, 1.5, -1.0]))
        norm.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    norm = global_batchnorm(norm, group) if group.world > 1 else norm
    results = {}
    for index, batch in enumerate(inputs):
        batch = group.shard(batch).clone().requires_grad_(True)
        output = norm(batch)
        (output * group.shard(upstream)).sum().backward()
        results[f"output{index}"] = group.gather(output.detach())[0]
        results[f"input_grad{index}"] = group.gather(batch.grad)[0]
    results["weight_grad"] = group.total(norm.weight.grad)  # summed over both passes and all processes
    results["running_mean"], results["running_var"] = norm.running_mean.clone(), norm.running_var.clone()
    results["num_batches_tracked"] = norm.num_batches_tracked.clone()
    return results


SHORT_RUN = PretextSettings(backbone="small_cnn", epochs=2, batch_size=8, lr=0.05, temperature=0.5,
                            projection_dim=16, seed=0)


def _in_two_processes(group: Group, device: torch.device, on_epoch, threshold: float, checkpoint: Path) -> dict:
    """Everything the tests compare, in one launch (starting processes is the slow part)."""
    short_run = _pretext_process(group, device, on_epoch, _images(), SHORT_RUN, AUGMENT,
                                 TrainingCheckpoint(checkpoint, "key"), False)
    return {"steps": _one_step_each(group, device, threshold), "batchnorm": _batchnorm(group, device),
            "short_run": short_run, "rank": group.rank, "world": group.world}


def _median_confidence() -> float:
    model = _seeded(partial(_clustering, 1))
    probabilities = predict_probabilities(model, _images(), AUGMENT, 512, CPU)[0]
    return float(probabilities.max(dim=1).values.median())


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    threshold = _median_confidence()
    checkpoint = tmp_path_factory.mktemp("ddp") / "pretext.pt"
    relayed: list[tuple[int, dict]] = []
    two = launch(_in_two_processes, 2, CPU, lambda epoch, record: relayed.append((epoch, record)), threshold,
                 checkpoint)
    one = {"steps": _one_step_each(SINGLE, CPU, threshold), "batchnorm": _batchnorm(SINGLE, CPU),
           "short_run": train_pretext(_images(), SHORT_RUN, AUGMENT, TrainingCheckpoint(None, "k"), CPU,
                                      progress=False)}
    return {"two": two, "one": one, "relayed": relayed, "checkpoint": checkpoint}


def _relative(got: torch.Tensor, expected: torch.Tensor) -> float:
    return float((got - expected).norm() / expected.norm())


@pytest.mark.parametrize("stage", ["pretext", "scan", "selflabel"])
def test_one_step_in_two_processes_gives_the_gradients_of_one(runs: dict, stage: str) -> None:
    assert runs["two"]["rank"] == 0 and runs["two"]["world"] == 2
    two_gradients, two_reported = runs["two"]["steps"][stage]
    one_gradients, one_reported = runs["one"]["steps"][stage]
    assert two_gradients.keys() == one_gradients.keys()
    for name, expected in one_gradients.items():
        assert expected.norm() > 0, name  # every parameter learns: the comparison means something
        assert _relative(two_gradients[name], expected) < TOLERANCE, (stage, name)
    flat = torch.tensor(two_reported, dtype=torch.float64).flatten().tolist()
    assert flat == pytest.approx(torch.tensor(one_reported, dtype=torch.float64).flatten().tolist(), rel=TOLERANCE)


def test_selflabel_step_had_confident_and_unconfident_images(runs: dict) -> None:
    _, (_, count) = runs["one"]["steps"]["selflabel"]
    assert 0 < count < 9


def test_global_batchnorm_matches_batchnorm_on_the_concatenated_batch(runs: dict) -> None:
    two, one = runs["two"]["batchnorm"], runs["one"]["batchnorm"]
    assert two.keys() == one.keys()
    for key, expected in one.items():
        if key == "num_batches_tracked":
            assert int(two[key]) == int(expected) == 2
        else:
            assert _relative(two[key], expected) < 1e-5, key


def test_global_batchnorm_in_one_process_is_batchnorm() -> None:
    torch.manual_seed(0)
    plain, inputs = nn.BatchNorm1d(5, momentum=None), torch.randn(6, 5)
    converted = global_batchnorm(nn.Sequential(nn.BatchNorm1d(5, momentum=None)), SINGLE)[0]
    assert isinstance(converted, GlobalBatchNorm)
    for _ in range(3):
        assert torch.allclose(converted(inputs), plain(inputs), atol=1e-6)
    assert torch.allclose(converted.running_var, plain.running_var, atol=1e-6)
    converted.eval(), plain.eval()
    assert torch.allclose(converted(inputs), plain(inputs), atol=1e-6)


def test_a_short_training_run_in_two_processes_matches_one(runs: dict) -> None:
    state, history = runs["two"]["short_run"]
    model = restore_state(_contrastive(), state)
    reference, reference_history = runs["one"]["short_run"]
    assert [record["epoch"] for record in history] == [1, 2]
    assert [record["loss"] for record in history] == pytest.approx(
        [record["loss"] for record in reference_history], rel=TOLERANCE)
    assert runs["relayed"] == [(record["epoch"], record) for record in history]  # reached the launching process
    expected = reference.state_dict()
    for name, value in model.state_dict().items():
        if value.is_floating_point() and expected[name].norm() > 0:
            # Two epochs let summation order drift: on an AMD EPYC the BatchNorm shifts (which
            # start at zero and hold only updates) end up to 0.33 % apart, the running means 0.16 %.
            # One step's gradients are held to TOLERANCE above; a wrong gradient or learning rate
            # moves these by the size of the updates themselves, tens of percent.
            assert _relative(value, expected[name]) < 1e-2, name
    assert runs["checkpoint"].exists()  # written by the main process


def test_the_stage_line_names_processes_and_backend() -> None:
    assert describe("pretext", 1, CPU) == "pretext: 1 process"
    assert describe("scan", 2, CPU) == "scan: 2 processes, gloo"
    assert describe("selflabel", 4, torch.device("cuda")) == "selflabel: 4 processes, nccl"


def test_epoch_relay_delivers_each_whole_line_once(tmp_path) -> None:
    relay, seen = EpochRelay(tmp_path / "epochs.jsonl"), []
    relay.deliver(lambda epoch, record: seen.append(epoch))  # nothing written yet
    relay(1, {"loss": 1.0})
    relay(2, {"loss": 0.5})
    with open(relay.path, "a") as handle:
        handle.write('{"epoch": 3')  # a line being written
    relay.deliver(lambda epoch, record: seen.append((epoch, record)))
    relay.deliver(lambda epoch, record: seen.append((epoch, record)))
    assert seen == [(1, {"loss": 1.0}), (2, {"loss": 0.5})]


@pytest.mark.parametrize("teacher", ["online", "fixed"])
def test_selflabel_in_two_processes_trains_as_in_one(teacher: str) -> None:
    """A run of two steps in two processes counts as one process does and lands on nearly its
    weights: each process steps its own copy of the model it was handed (on the CPU, spawning
    shares a tensor argument's memory, and both optimisers once stepped the same weights), and
    a fixed teacher computed by the main process reaches the other one (``Group.share``)."""
    from scan_core.training.selflabel import SelflabelSettings, train_selflabel

    settings = SelflabelSettings(threshold=_median_confidence(), epochs=1, batch_size=12, lr=1e-3, seed=0,
                                 teacher=teacher)
    runs = [train_selflabel(_seeded(partial(_clustering, 1)), _images(), settings, AUGMENT,
                            TrainingCheckpoint(None, "k"), CPU, progress=False, processes=processes)
            for processes in (1, 2)]
    (one, one_history), (two, two_history) = runs
    assert [record["confident"] for record in two_history] == [record["confident"] for record in one_history]
    before = _seeded(partial(_clustering, 1)).state_dict()
    for name, expected in one.state_dict().items():
        if expected.is_floating_point() and not torch.equal(expected, before[name]):
            assert _relative(two.state_dict()[name], expected) < 1e-2, name
