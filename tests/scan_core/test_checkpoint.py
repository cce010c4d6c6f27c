"""Atomic writes and safe, key-bound checkpoints."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from scan_core.checkpoint import (
    TrainingCheckpoint,
    UnsafeCheckpointError,
    atomic_path,
    atomic_write_text,
    load_checkpoint,
    save_checkpoint,
)


def test_atomic_path_replaces_target_on_success(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.txt"
    with atomic_path(target) as temporary:
        assert temporary.parent == target.parent and temporary != target
        temporary.write_text("whole")
        assert not target.exists()  # nothing visible until the body finishes
    assert target.read_text() == "whole"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_atomic_path_leaves_no_partial_file_when_body_raises(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError, match="crash"):
        with atomic_path(target) as temporary:
            temporary.write_text("half of it")
            raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_keeps_previous_file_when_body_raises(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    atomic_write_text(target, "previous")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as temporary:
            temporary.write_text("new but partial")
            raise KeyboardInterrupt
    assert target.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_checkpoint_round_trip_of_plain_state(tmp_path: Path) -> None:
    state = {"model": {"w": torch.arange(6.0).view(2, 3)}, "epoch": 3, "history": [{"loss": 0.5}],
             "name": "small_cnn", "rng": torch.get_rng_state()}
    save_checkpoint(tmp_path / "c.pt", state)
    loaded = load_checkpoint(tmp_path / "c.pt")
    assert loaded["epoch"] == 3 and loaded["history"] == [{"loss": 0.5}] and loaded["name"] == "small_cnn"
    assert torch.equal(loaded["model"]["w"], state["model"]["w"])
    assert torch.equal(loaded["rng"], state["rng"])


class Payload:
    """Unpickling this would create ``marker``: code run by merely loading a file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


class PlainObject:
    def __init__(self) -> None:
        self.value = 1


@pytest.mark.parametrize(
    "payload",
    [lambda marker: {"f": os.system}, lambda marker: {"obj": PlainObject()}, lambda marker: {"x": Payload(marker)}],
    ids=["os.system", "custom-class", "reduce-payload"],
)
def test_load_checkpoint_refuses_pickled_code(tmp_path: Path, payload) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save(payload(str(marker)), path)
    with pytest.raises(UnsafeCheckpointError, match="refusing to load"):
        load_checkpoint(path)
    assert not marker.exists()


def test_training_checkpoint_is_bound_to_its_key(tmp_path: Path) -> None:
    path = tmp_path / "stage.pt"
    TrainingCheckpoint(path, "key-a").save({"epoch": 1, "model": {"w": torch.ones(2)}})
    assert TrainingCheckpoint(path, "key-b").load() is None
    state = TrainingCheckpoint(path, "key-a").load()
    assert state is not None and state["epoch"] == 1 and state["key"] == "key-a"
    assert torch.equal(state["model"]["w"], torch.ones(2))


def test_training_checkpoint_without_file_or_path(tmp_path: Path) -> None:
    assert TrainingCheckpoint(tmp_path / "missing.pt", "k").load() is None
    disabled = TrainingCheckpoint(None, "k")
    disabled.save({"epoch": 0})
    assert disabled.load() is None
    disabled.discard()
    assert list(tmp_path.iterdir()) == []


def test_training_checkpoint_discard_removes_file(tmp_path: Path) -> None:
    checkpoint = TrainingCheckpoint(tmp_path / "stage.pt", "k")
    checkpoint.save({"epoch": 0})
    assert (tmp_path / "stage.pt").exists()
    checkpoint.discard()
    assert not (tmp_path / "stage.pt").exists()
    assert checkpoint.load() is None
    checkpoint.discard()  # twice is fine
