"""Atomic writes and safe, params-bound training checkpoints."""

from __future__ import annotations

import io
import os
import pickle
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch


@contextmanager
def atomic_path(target: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it over ``target`` only on success.

    A crash or kill mid-write leaves the previous file (or none), never a partial one, and
    two writers of the same file each produce a whole file.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(handle)
    try:
        yield Path(temporary)
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600; give the mode a plain open() would
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def atomic_write_text(target: Path | str, text: str) -> None:
    with atomic_path(target) as temporary:
        temporary.write_text(text)


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint holds pickled objects beyond tensors and plain containers."""


def save_checkpoint(target: Path | str, state: dict[str, Any]) -> None:
    """Write ``state`` atomically; the same state always gives the same bytes."""
    buffer = io.BytesIO()  # torch.save names the archive after a file's name, a buffer's is fixed
    torch.save(state, buffer)
    with atomic_path(target) as temporary:
        temporary.write_bytes(buffer.getvalue())


def load_checkpoint(source: Path | str) -> dict[str, Any]:
    """Load with ``weights_only=True``: tensors, numbers, strings and containers only."""
    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise UnsafeCheckpointError(
            f"refusing to load {source}: it contains pickled objects other than tensors and "
            f"plain containers, which could run code. Only load checkpoints written by this "
            f"pipeline. ({str(error).splitlines()[0]})"
        ) from error


class TrainingCheckpoint:
    """The resumable state of one training stage, valid only for one ``key``.

    ``key`` is derived from the stage's params and input hashes: a checkpoint written under
    other params is ignored rather than resumed from.
    """

    def __init__(self, path: Path | str | None, key: str) -> None:
        self.path = Path(path) if path else None
        self.key = key

    def load(self) -> dict[str, Any] | None:
        if self.path is None or not self.path.exists():
            return None
        state = load_checkpoint(self.path)
        return state if state.get("key") == self.key else None

    def save(self, state: dict[str, Any]) -> None:
        if self.path is not None:
            save_checkpoint(self.path, {**state, "key": self.key})

    def discard(self) -> None:
        if self.path is not None and self.path.exists():
            self.path.unlink()
