"""The per-epoch log of a training stage: the time estimate a user reads early in a long run."""

from __future__ import annotations

import logging

import tasks.progress as progress
from tasks.progress import epoch_logger


def test_the_estimate_comes_from_the_second_epoch_not_the_first(monkeypatch, caplog):
    """The first epoch carries one-off work (warm start, cached features): 60 s, then 1 s an
    epoch. The estimate after epoch 2 is 1 s x 8 remaining epochs, not 60 s x 9."""
    ends = iter([60.0, 61.0, 62.0])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(ends))
    on_epoch = epoch_logger(logging.getLogger("test-progress"), "scan", 10, lambda record: "")
    with caplog.at_level(logging.INFO, logger="test-progress"):
        on_epoch(1, {})
        assert "remaining" not in caplog.text
        on_epoch(2, {})
        on_epoch(3, {})
    estimates = [record.getMessage() for record in caplog.records if "remaining" in record.getMessage()]
    assert estimates == ["scan: about 8 s for the remaining 8 epoch(s)"]
