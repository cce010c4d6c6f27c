"""How a stage becomes a cached Prefect task.

A stage's cache key is built from its params, the content digests of its input artifacts
and the digest of the code it runs. A cached result is only trusted while the stage's
outputs on disk are still the ones that run produced: every run leaves a record of its key
and output digests under ``.scan_cache/records``, and the flows refresh the cache whenever
the record and the files disagree.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from filelock import FileLock
from prefect import task
from prefect.context import TaskRunContext

from scan_core.checkpoint import UnsafeCheckpointError, atomic_write_text
from scan_core.machine import machine_description
from tasks.device import device
from tasks.stages import STAGES, StageSpec

CACHE_DIR = Path(".scan_cache")
MACHINE_FILE = "machine.json"  # beside each stage's outputs: the CPU and thread count that made them
Digests = dict[str, str]


DIGEST_CACHE_FILE = CACHE_DIR / "digests.json"
# A file changed this soon after its last write could share that write's timestamp (kernel
# clocks tick in milliseconds), so its digest is computed but not remembered yet.
_SETTLED_NS = 2_000_000_000


def file_digest(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def _identity(stat: os.stat_result) -> list[int]:
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]


def _read_digest_cache() -> dict[str, list]:
    try:
        cache = json.loads(DIGEST_CACHE_FILE.read_text())
    except (OSError, ValueError):  # missing, or half of a file another process wrote without rename
        return {}
    return cache if isinstance(cache, dict) else {}


def _write_digest_cache(new: dict[str, list]) -> None:
    """Add ``new`` entries to the cache file (merged with what other processes wrote since it
    was read), dropping entries of files that are gone. Written by an atomic rename: two
    processes racing lose at most each other's entries, which are then re-hashed once."""
    merged = {**_read_digest_cache(), **new}
    merged = {path: entry for path, entry in merged.items() if os.path.exists(path)}
    DIGEST_CACHE_FILE.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(DIGEST_CACHE_FILE, json.dumps(merged, sort_keys=True))


def digest_paths(paths: tuple[str, ...] | list[str]) -> Digests:
    """``{relative file path: sha256}`` of every file under ``paths``; missing paths give nothing.

    Digests are remembered in ``.scan_cache/digests.json`` by each file's size, modification
    and change times and inode, so an unchanged ``images.npy`` is not read again at every run.
    """
    cache, new, digests = _read_digest_cache(), {}, {}
    now = time.time_ns()
    for file in (file for path in paths for file in _files_under(Path(path))):
        key, identity = os.path.abspath(file), _identity(file.stat())
        entry = cache.get(key)
        if isinstance(entry, list) and len(entry) == 2 and entry[0] == identity:
            digests[file.as_posix()] = entry[1]
            continue
        digests[file.as_posix()] = file_digest(file)
        if now - max(identity[1], identity[2]) > _SETTLED_NS:
            new[key] = [identity, digests[file.as_posix()]]
    if new:
        _write_digest_cache(new)
    return digests


def _files_under(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.exists():
        return []
    return sorted(
        file for file in path.rglob("*")
        if file.is_file() and not any(part.startswith(".") for part in file.relative_to(path).parts)
    )


def combine(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


@functools.cache
def code_version(stage: str) -> str:
    """Digest of the source files the stage runs (its generated code dependencies)."""
    root = Path(__file__).resolve().parent.parent
    return combine(sorted((file, file_digest(root / file)) for file in STAGES[stage].code))


def stage_key(stage: str, params: dict[str, Any], inputs: dict[str, Digests]) -> str:
    return combine(stage, params, inputs, code_version(stage))


def record_path(stage: str) -> Path:
    return CACHE_DIR / "records" / f"{stage}.json"


def read_record(stage: str) -> dict[str, Any]:
    """What the last run of ``stage`` in this project recorded: its key and output digests."""
    path = record_path(stage)
    return json.loads(path.read_text()) if path.exists() else {}


def write_record(stage: str, key: str, outputs: Digests, **extra: Any) -> None:
    record = {"key": key, "outputs": outputs, **extra}
    atomic_write_text(record_path(stage), json.dumps(record, indent=1, sort_keys=True))


def outputs_intact(stage: str, key: str) -> bool:
    """True when the last run of ``stage`` had this key and its outputs are unchanged on disk."""
    record = read_record(stage)
    outputs = record.get("outputs") or {}
    return record.get("key") == key and bool(outputs) and digest_paths(STAGES[stage].outputs) == outputs


def require_outputs(stage: str) -> None:
    """Stop, naming what to run, when ``stage`` has not left its outputs on disk."""
    if not any(Path(path).exists() for path in STAGES[stage].outputs):
        raise FileNotFoundError(
            f"stage {stage!r} has no outputs in {', '.join(STAGES[stage].outputs)}; "
            f"run it first (dvc repro {stage})"
        )


def current_outputs(stage: str) -> Digests:
    """Digests of a finished stage's outputs, for a downstream stage run on its own."""
    require_outputs(stage)
    return digest_paths(STAGES[stage].outputs)


def path_fingerprint(path: Path) -> Digests:
    """Cheap identity of a data folder: every file's relative path, size and modification time."""
    files = [path] if path.is_file() else sorted(file for file in path.rglob("*") if file.is_file())
    listing = [(file.relative_to(path).as_posix() if file != path else file.name, file.stat().st_size,
                file.stat().st_mtime_ns) for file in files]
    return {path.as_posix(): combine(listing)}


def source_inputs(stage: str, params: dict[str, Any]) -> dict[str, Digests]:
    """Inputs that live outside the pipeline: for ``prepare`` the data folder (by listing) and
    the ImageNet subset file (by content); for ``pretext`` a local pretrained weights file (by
    content; dvc.yaml lists the whole weights/ folder instead, as its deps cannot follow a param)."""
    found: dict[str, Digests] = {}
    if stage == "pretext":
        weights = params.get("pretext.weights")
        if params.get("pretext.method") == "pretrained" and weights and Path(weights).is_file():
            found["pretext.weights"] = digest_paths([weights])
        return found
    if stage != "prepare":
        return found
    if Path(params["data.root"]).exists():
        found["data.root"] = path_fingerprint(Path(params["data.root"]))
    if (subset := params.get("data.subset_file")) and Path(subset).is_file():
        found["data.subset_file"] = digest_paths([subset])
    return found


def _cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    return stage_key(context.task.name, parameters["params"], parameters["inputs"])


class StagedOutputs:
    """Where a running stage writes: each declared output is built in a hidden sibling
    (``artifacts/.scan.staging``) and moved into place by ``publish`` only when the stage has
    finished, so a reader finds a stage's previous outputs or none, never a mix. Folders
    are published first, single files (``metrics/*.json``) last, each by an atomic rename."""

    def __init__(self, declared: tuple[str, ...]):
        self.declared = [Path(path) for path in declared]
        for staging in map(self._staging, self.declared):
            _remove(staging)  # left by a run that was killed

    @staticmethod
    def _staging(final: Path) -> Path:
        return final.with_name(f".{final.name}.staging")

    def __call__(self, final: Path | str) -> Path:
        """The path to write ``final`` at now (its parent folder exists)."""
        final = Path(final)
        for declared in self.declared:
            if final == declared or declared in final.parents:
                staged = self._staging(declared) / final.relative_to(declared)
                staged.parent.mkdir(parents=True, exist_ok=True)
                return staged
        raise ValueError(f"{final} is not among this stage's declared outputs {[str(p) for p in self.declared]}")

    def publish(self) -> None:
        for final in sorted(self.declared, key=lambda path: path.suffix != ""):
            staged = self._staging(final)
            if not staged.exists():
                _remove(final)  # not written this time: an older run's copy would be stale
            elif staged.is_dir():
                retired = final.with_name(f".{final.name}.retired")
                _remove(retired)
                if final.exists():
                    final.rename(retired)
                staged.rename(final)
                _remove(retired)
            else:
                staged.replace(final)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


StageBody = Callable[[dict[str, Any], dict[str, Digests], StagedOutputs], None]

# Errors that a retry cannot fix: bad params, bad or missing input, diverged training.
USER_ERRORS = (ValueError, FileNotFoundError, FloatingPointError, UnsafeCheckpointError)


def _worth_retrying(task_: Any, task_run: Any, state: Any) -> bool:
    return not isinstance(state.result(raise_on_failure=False), USER_ERRORS)


def stage_task(stage: str) -> Callable[[StageBody], Any]:
    """Make a stage body (params, input digests, where to write) into a cached Prefect task
    that publishes what the body wrote and returns its digests."""
    spec: StageSpec = STAGES[stage]

    def decorate(body: StageBody):
        def run(params: dict[str, Any], inputs: dict[str, Digests]) -> Digests:
            # One run of a stage at a time: two concurrent runs would mix their output files.
            lock_file = CACHE_DIR / "locks" / f"{stage}.lock"
            lock_file.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(lock_file):
                staged = StagedOutputs(spec.outputs)
                started = time.perf_counter()
                body(params, inputs, staged)
                compute_seconds = time.perf_counter() - started
                machine = json.dumps(machine_description(device()), indent=1)
                staged(Path(spec.folders[0]) / MACHINE_FILE).write_text(machine)
                staged.publish()
                outputs = digest_paths(spec.outputs)
                write_record(stage, stage_key(stage, params, inputs), outputs, compute_seconds=round(compute_seconds, 3))
            return outputs

        run.__name__, run.__qualname__, run.__doc__ = body.__name__, body.__qualname__, body.__doc__
        return task(
            run,
            name=stage,
            cache_key_fn=_cache_key,
            persist_result=True,
            retries=1,
            retry_delay_seconds=5,
            retry_condition_fn=_worth_retrying,
            log_prints=True,
        )

    return decorate
