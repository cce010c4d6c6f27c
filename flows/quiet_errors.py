"""Prefect's log lines about a stage stopped by bad input, cut to one short line each.

Bad input (an unreadable image, a wrong param) is the user's to fix, and ``python -m flows``
prints it once as its ``error:`` line. Left alone, Prefect would log the same message up to
four times more, once with a traceback of its own engine. The run's state in the Prefect UI
keeps the full message; only the console and API log lines are shortened.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager

from tasks.common import USER_ERRORS

RUN_LOGGERS = ("prefect.task_runs", "prefect.flow_runs")
_EXCEPTION_NAMED = re.compile(r"encountered an exception:? ([A-Za-z_]\w*)")


def _user_error_names() -> set[str]:
    names: set[str] = set()
    pending: list[type] = list(USER_ERRORS)
    while pending:
        kind = pending.pop()
        if kind.__name__ not in names:
            names.add(kind.__name__)
            pending += kind.__subclasses__()
    return names


def about_bad_input(record: logging.LogRecord) -> str | None:
    """The name of the user error a Prefect record is about, or None."""
    error = record.exc_info[1] if record.exc_info else None
    if isinstance(error, USER_ERRORS):
        return type(error).__name__
    named = _EXCEPTION_NAMED.search(record.getMessage())
    return named.group(1) if named and named.group(1) in _user_error_names() else None


class BadInputFilter(logging.Filter):
    """Drops Prefect's traceback of a user error and rewrites its state lines to one short
    line without the message."""

    def filter(self, record: logging.LogRecord) -> bool:
        name = about_bad_input(record)
        if name is not None and record.exc_info:
            return False
        if name is not None:
            record.msg = f"stopped on bad input ({name}); the command prints the reason"
            record.args, record.exc_info, record.exc_text = (), None, None
        return True


@contextmanager
def quiet_bad_input() -> Iterator[None]:
    """Shorten Prefect's run log lines about user errors while the block runs."""
    quiet = BadInputFilter()
    loggers = [logging.getLogger(name) for name in RUN_LOGGERS]
    for logger in loggers:
        logger.addFilter(quiet)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(quiet)
