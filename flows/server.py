"""``python -m flows.server COMMAND...``: run COMMAND (``dvc repro``, ``dvc exp run ...``) with
one local Prefect server shared by all its stages, and stop that server when COMMAND ends.

Without ``PREFECT_API_URL`` every ``python -m flows <stage>`` would start and stop its own
temporary server (5-20 s each, seven times per run). When ``PREFECT_API_URL`` is already set
the command runs against that server and nothing is started. The server is started in its own
process group and stopped by its PID on every way out (normal end, error, Ctrl-C, SIGTERM), so
it never outlives the command; its log is kept in ``.scan_cache/prefect-server.log``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

SERVER_LOG = Path(".scan_cache/prefect-server.log")
STARTUP_TIMEOUT_S = 90.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_healthy(api_url: str, server: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the Prefect server exited with code {server.returncode}; see {SERVER_LOG}")
        try:
            with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"the Prefect server did not answer within {timeout_s:.0f} s; see {SERVER_LOG}")


def stop_group(process: subprocess.Popen, first: signal.Signals = signal.SIGTERM, grace_s: float = 15) -> None:
    """Send ``first`` to the process group led by ``process``; SIGKILL what is left after ``grace_s``."""
    if process.poll() is None:
        os.killpg(process.pid, first)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # stragglers of the group, even after the leader ended
    except ProcessLookupError:
        pass
    process.wait()


def _raise_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def run_to_end(command: list[str], env: dict[str, str]) -> int:
    """Run ``command`` in its own process group and wait for it. Ctrl-C and SIGTERM are passed
    on to the whole group (DVC and the stage it runs), so nothing it started is left behind."""
    child = subprocess.Popen(command, env=env, start_new_session=True)
    try:
        return child.wait()
    except KeyboardInterrupt:
        stop_group(child, signal.SIGINT)
        return child.returncode
    except SystemExit:
        stop_group(child, signal.SIGTERM)
        raise


def run_with_server(command: list[str]) -> int:
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    if os.environ.get("PREFECT_API_URL"):
        return run_to_end(command, dict(os.environ))
    SERVER_LOG.parent.mkdir(parents=True, exist_ok=True)
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    with open(SERVER_LOG, "w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        try:
            wait_until_healthy(api_url, server, STARTUP_TIMEOUT_S)
            print(f"Prefect server for this run: {api_url.removesuffix('/api')} (stopped when the run ends)",
                  flush=True)
            return run_to_end(command, {**os.environ, "PREFECT_API_URL": api_url})
        finally:
            stop_group(server)


def main(argv: list[str] | None = None) -> int:
    command = sys.argv[1:] if argv is None else argv
    if not command or command[0] in {"-h", "--help"}:
        print(__doc__.strip())
        return 0 if command else 2
    try:
        return run_with_server(command)
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
