"""Where a stage's wall time goes: compute, imports, and orchestration (Prefect and the
stage's own bookkeeping), with a Prefect server already running and without one.

    python bench/overhead.py [--params-from tests]   # prints a Markdown table

Runs every stage once with `python -m flows <stage>` in a temporary copy of the project on
tiny settings (so compute is short and the overhead shows), first against one server
started for the whole run (what `python -m flows.server` and `make run` do), then with no
`PREFECT_API_URL`, where each stage starts a temporary server of its own.
- wall: the stage command, start to exit;
- compute: the stage body (recorded by the stage in .scan_cache/records/<stage>.json);
- imports: a fresh interpreter importing what the stage command imports;
- orchestration: the rest (Prefect flow and task runs, cache checks, digests, server start).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
STAGES = ["prepare", "pretext", "embed", "mine", "scan", "selflabel", "evaluate"]
TINY = {"pretext": {"epochs": 2, "batch_size": 128}, "mine": {"topk": 10},
        "scan": {"num_neighbors": 5, "epochs": 2, "batch_size": 128},
        "selflabel": {"epochs": 1, "batch_size": 256}, "evaluate": {"prototypes": 2}}
COPIED = ("scan_core", "tasks", "flows", "data", "dvc.yaml", "params.yaml", "pyproject.toml")


def make_project(folder: Path) -> Path:
    """A copy of the project's code and params with tiny epochs."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, folder / name)
    params = yaml.safe_load((folder / "params.yaml").read_text())
    for group, values in TINY.items():
        params[group].update(values)
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return folder


def import_seconds(stage: str, project: Path, env: dict[str, str]) -> float:
    code = f"import flows.__main__, flows.pipeline, tasks.{stage}"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=project, env=env, check=True)
    return time.perf_counter() - start


def run_stages(project: Path, env: dict[str, str]) -> list[dict[str, float]]:
    shutil.rmtree(project / ".scan_cache", ignore_errors=True)
    shutil.rmtree(project / "artifacts", ignore_errors=True)
    rows = []
    for stage in STAGES:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "flows", stage], cwd=project, env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        compute = json.loads((project / f".scan_cache/records/{stage}.json").read_text())["compute_seconds"]
        imports = import_seconds(stage, project, env)
        rows.append({"stage": stage, "wall": wall, "compute": compute, "imports": imports,
                     "orchestration": wall - compute - imports})
    return rows


def table(rows_by_mode: dict[str, list[dict[str, float]]]) -> str:
    lines = ["| stage | server | wall (s) | compute (s) | imports (s) | orchestration (s) |", "|---|---|---|---|---|---|"]
    for mode, rows in rows_by_mode.items():
        for row in rows:
            lines.append(f"| {row['stage']} | {mode} | {row['wall']:.1f} | {row['compute']:.1f} | "
                         f"{row['imports']:.1f} | {row['orchestration']:.1f} |")
        total = {key: sum(row[key] for row in rows) for key in ("wall", "compute", "imports", "orchestration")}
        lines.append(f"| **all 7** | {mode} | {total['wall']:.1f} | {total['compute']:.1f} | {total['imports']:.1f} | "
                     f"{total['orchestration']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    from flows.server import free_port, stop_group, wait_until_healthy

    with tempfile.TemporaryDirectory(prefix="scan-overhead-") as folder:
        project = make_project(Path(folder))
        base = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}
        base["PREFECT_HOME"] = str(Path(folder) / "prefect-home")
        port = free_port()
        api_url = f"http://127.0.0.1:{port}/api"
        server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                   "--port", str(port)], env=base, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_until_healthy(api_url, server, 120)
            shared = run_stages(project, {**base, "PREFECT_API_URL": api_url})
        finally:
            stop_group(server)
        alone = run_stages(project, base)
    print(table({"running": shared, "none (one per stage)": alone}))


if __name__ == "__main__":
    main()
