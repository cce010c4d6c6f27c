"""Prefect artifacts of a stage run (the UI's Artifacts tab): a keyed table of the stage's
key numbers (``scan-<stage>``), a progress bar updated every epoch of a training stage
(``scan-<stage>-progress``) and the evaluation report (``scan-report``).

Artifacts are a view for people, never an input: outside a Prefect run (a stage body called
directly, as the tests do) nothing is published, and a failure to publish is logged as a
warning, never raised, so a stage never fails because the UI could not be told.
"""

from __future__ import annotations

import logging
import posixpath
import re
from pathlib import Path
from typing import Any, Callable
from uuid import UUID

from prefect import artifacts
from prefect.context import FlowRunContext, TaskRunContext

logger = logging.getLogger(__name__)


def artifact_key(stage: str, suffix: str = "") -> str:
    """``scan-<stage>[-<suffix>]`` in the characters Prefect allows in a key (a-z, 0-9, -)."""
    return re.sub(r"[^a-z0-9-]+", "-", f"scan-{stage}{'-' + suffix if suffix else ''}".lower())


def in_prefect_run() -> bool:
    """True inside a Prefect task or flow run, where there is a client to publish through."""
    return TaskRunContext.get() is not None or FlowRunContext.get() is not None


def _publish(what: str, create: Callable[[], Any]) -> Any:
    if not in_prefect_run():
        return None
    try:
        return create()
    except Exception as error:  # noqa: BLE001 - the UI view must never fail a stage
        logger.warning("could not publish the Prefect %s artifact: %s", what, error)
        return None


def _plain(value: Any) -> Any:
    """A JSON-friendly table cell: floats rounded, numpy scalars made Python numbers."""
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        value = value.item()
    return round(value, 6) if isinstance(value, float) else value


def publish_key_numbers(stage: str, numbers: dict[str, Any], description: str = "") -> None:
    """A two-column table (``key number``, ``value``) under the key ``scan-<stage>``."""
    rows = [{"key number": name, "value": _plain(value)} for name, value in numbers.items()]
    publish_table(stage, rows, description or f"{stage}: key numbers of this run")


def publish_table(stage: str, rows: list[dict[str, Any]], description: str = "", suffix: str = "") -> None:
    """A table, one dict per row, under the key ``scan-<stage>[-<suffix>]``."""
    table = [{column: _plain(value) for column, value in row.items()} for row in rows]
    _publish("table", lambda: artifacts.create_table_artifact(
        table, key=artifact_key(stage, suffix), description=description))


class EpochProgress:
    """A progress artifact ``scan-<stage>-progress`` (0 to 100 %), created at once and moved
    on by ``update(epoch)`` after every epoch."""

    def __init__(self, stage: str, epochs: int):
        self.stage, self.epochs = stage, max(epochs, 0)
        self.artifact_id: UUID | None = _publish("progress", lambda: artifacts.create_progress_artifact(
            0.0, key=artifact_key(stage, "progress"), description=f"{stage}: epochs done of {self.epochs}"))

    def update(self, epoch: int) -> None:
        if self.artifact_id is None:
            return
        done = 100.0 if self.epochs == 0 else min(100.0, 100.0 * epoch / self.epochs)
        _publish("progress", lambda: artifacts.update_progress_artifact(
            self.artifact_id, done, description=f"{self.stage}: epoch {epoch} of {self.epochs}"))


_PICTURE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")


def publish_report(markdown: str, report_dir: Path, full_report: Path | None = None) -> None:
    """The evaluation report under the key ``scan-report``. Its pictures are files beside the
    report that the UI cannot show: each becomes its path in the project instead, and a last
    line names ``full_report`` (the HTML report with the pictures) when there is one."""
    def picture_path(match: re.Match) -> str:
        return f"*{match[1]}: `{posixpath.normpath((report_dir / match[2]).as_posix())}`*"

    text = _PICTURE.sub(picture_path, markdown)
    if full_report is not None:
        text += f"\nThe full report, with its pictures, is `{full_report.as_posix()}` in the project.\n"
    _publish("markdown", lambda: artifacts.create_markdown_artifact(
        text, key=artifact_key("report"),
        description=f"the evaluation report ({(report_dir / 'report.md').as_posix()} in the project)"))


MODEL_COLUMNS = ("acc", "nmi", "ari", "acc_many_to_one", "top5", "nonempty_clusters")


def publish_metrics(metrics: dict[str, Any], num_clusters: int) -> None:
    """The evaluation metrics under ``scan-evaluate``: one row per model with ACC, NMI, ARI
    (when labels are known), the cluster count, the clusters used and the label-free health."""
    models = [name for name, values in metrics.items() if isinstance(values, dict) and "health" in values]
    rows = [{"model": name, **{key: metrics[name].get(key) for key in MODEL_COLUMNS},
             "clusters": num_clusters, **metrics[name]["health"]} for name in models]
    columns = [column for column in dict.fromkeys(key for row in rows for key in row)
               if any(row.get(column) is not None for row in rows)]
    publish_table("evaluate", [{column: row.get(column) for column in columns} for row in rows],
                  "evaluation metrics per model" + (f"; {metrics['health_warning']}" if "health_warning" in metrics
                                                    else ""))
