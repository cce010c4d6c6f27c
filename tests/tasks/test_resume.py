"""A pretext stage killed with SIGKILL resumes from its last checkpoint and ends exactly
where an uninterrupted run with the same seed ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from scan_core.checkpoint import load_checkpoint
from tests.conftest import make_project, run, set_params

EPOCHS = 6


def _pretext_project(root: Path) -> Path:
    project = make_project(root)
    set_params(project, {"pretext": {"epochs": EPOCHS}})
    run([sys.executable, "-m", "flows", "prepare"], project)
    return project


def _start_pretext(project: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "flows", "pretext"], cwd=project,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _checkpointed_epochs(checkpoint: Path) -> int:
    try:
        return load_checkpoint(checkpoint)["epoch"] + 1
    except Exception:  # not written yet
        return 0


def test_pretext_killed_midway_resumes_to_the_uninterrupted_result(tmp_path, prefect_api):
    interrupted = _pretext_project(tmp_path / "interrupted")
    checkpoint = interrupted / ".scan_cache/checkpoints/pretext.pt"
    process = _start_pretext(interrupted)
    deadline = time.monotonic() + 300
    while _checkpointed_epochs(checkpoint) < 2 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    killed_after = _checkpointed_epochs(checkpoint)
    assert 2 <= killed_after < EPOCHS, "the run was not killed midway"
    assert not (interrupted / "artifacts/pretext/model.pt").exists()

    resumed_log = run([sys.executable, "-m", "flows", "pretext"], interrupted)
    assert f"resuming after epoch {killed_after}" in resumed_log

    uninterrupted = _pretext_project(tmp_path / "uninterrupted")
    run([sys.executable, "-m", "flows", "pretext"], uninterrupted)

    resumed_state = load_checkpoint(interrupted / "artifacts/pretext/model.pt")["model"]
    reference_state = load_checkpoint(uninterrupted / "artifacts/pretext/model.pt")["model"]
    for name, tensor in reference_state.items():
        assert torch.equal(resumed_state[name], tensor), name
    assert (interrupted / "artifacts/pretext/history.json").read_text() == \
        (uninterrupted / "artifacts/pretext/history.json").read_text()
