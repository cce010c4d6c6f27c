"""Screenshots of what a user sees in the Prefect UI after one `scan-experiment` run: the run
with its stages as child runs, and the Artifacts tab. Writes docs/prefect-run.png and
docs/prefect-artifacts.png (needs Debian's chromium).

    python bench/ui_screenshots.py

Runs a tiny experiment (digits, 2 epochs per stage) in a temporary git + DVC copy of the
project against a Prefect server it starts, then stops that server by its PID.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from overhead import make_project  # noqa: E402

DOCS = ROOT / "docs"
RUN_EXPERIMENT = """
import json
from flows.experiment import scan_experiment
state = scan_experiment(overrides={"scan.entropy_weight": 3}, name="ui-demo", return_state=True)
print(json.dumps({"flow_run": str(state.state_details.flow_run_id)}))
"""


def screenshot(url: str, target: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1400,900", "--virtual-time-budget=15000", f"--screenshot={target}", url],
                   check=True, capture_output=True)


def main() -> None:
    from flows.server import free_port, stop_group, wait_until_healthy

    with tempfile.TemporaryDirectory(prefix="scan-ui-") as folder:
        project = make_project(Path(folder) / "project")
        env = {**os.environ, "PREFECT_HOME": str(Path(folder) / "prefect-home"),
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        for command in (["git", "init", "-q"], ["git", "config", "user.email", "demo@example.com"],
                        ["git", "config", "user.name", "demo"], ["dvc", "init", "-q"], ["git", "add", "-A"],
                        ["git", "commit", "-qm", "demo"]):
            subprocess.run(command, cwd=project, env=env, check=True)
        port = free_port()
        env["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
        server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                   "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_until_healthy(env["PREFECT_API_URL"], server, 120)
            output = subprocess.run([sys.executable, "-c", RUN_EXPERIMENT], cwd=project, env=env, check=True,
                                    capture_output=True, text=True).stdout
            flow_run = json.loads(output.strip().splitlines()[-1])["flow_run"]
            DOCS.mkdir(exist_ok=True)
            screenshot(f"http://127.0.0.1:{port}/runs/flow-run/{flow_run}", DOCS / "prefect-run.png")
            screenshot(f"http://127.0.0.1:{port}/artifacts", DOCS / "prefect-artifacts.png")
        finally:
            stop_group(server)
    print(f"wrote {DOCS / 'prefect-run.png'} and {DOCS / 'prefect-artifacts.png'}")


if __name__ == "__main__":
    main()
