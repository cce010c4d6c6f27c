"""Prefect flows: the whole SCAN pipeline, and one stage at a time (what dvc.yaml calls)."""

import logging
import os
from pathlib import Path

# Cached task results live with the project, beside the stage records that validate them.
os.environ.setdefault("PREFECT_RESULTS_LOCAL_STORAGE_PATH", str(Path(".scan_cache/prefect-results").resolve()))
# A temporary API server starts with every flow run when PREFECT_API_URL is unset; on a
# busy 2-core machine it can take longer than Prefect's default 20 s to come up.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
# Telemetry writes race the temporary server's first database migration ("database is locked").
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# scan_core logs (resumes, warnings) go to the terminal and to the Prefect UI with the task's logs.
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "scan_core")
logging.getLogger("scan_core").setLevel(logging.INFO)
# scan_core used outside a flow run (a notebook, a test) logs locally without a warning.
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
# Set by the scan-experiment flow for the dvc it starts: stage runs attach to that flow run.
PARENT_RUN_ENV = "SCAN_EXPERIMENT_FLOW_RUN_ID"
