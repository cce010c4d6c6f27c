"""Per-epoch log lines with a time estimate, so a long CPU run says early how long it will take,
and a progress bar in the Prefect UI (the ``scan-<stage>-progress`` artifact)."""

from __future__ import annotations

import logging
import time
from typing import Callable

from scan_core.training.common import EpochCallback
from tasks.artifacts import EpochProgress


def epoch_logger(logger: logging.Logger | logging.LoggerAdapter, stage: str, epochs: int,
                 describe: Callable[[dict], str]) -> EpochCallback:
    """An ``on_epoch`` callback logging ``describe(record)``; after the second epoch it ran,
    it also logs the estimated time for the remaining ones, from that epoch's duration (the
    first carries the stage's one-off work: a warm start, cached features). The stage's
    progress artifact is created now, at 0 %, and moved on after every epoch."""
    ended: list[float] = []
    progress = EpochProgress(stage, epochs)

    def on_epoch(epoch: int, record: dict) -> None:
        logger.info("%s epoch %d/%d: %s", stage, epoch, epochs, describe(record))
        progress.update(epoch)
        ended.append(time.monotonic())
        remaining = epochs - epoch
        if len(ended) == 2 and remaining > 0:
            seconds = (ended[1] - ended[0]) * remaining
            logger.info("%s: about %s for the remaining %d epoch(s)", stage, _duration(seconds), remaining)

    return on_epoch


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"
