"""``python -m flows.server``: one Prefect server per run, never outliving the run."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.conftest import PROJECT_ROOT

SHOW_URL = "import os; print('child sees', os.environ['PREFECT_API_URL'], flush=True)"


def _environment(tmp_path: Path, api_url: str | None = None) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}
    environment["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    environment["PYTHONPATH"] = str(PROJECT_ROOT)
    if api_url:
        environment["PREFECT_API_URL"] = api_url
    return environment


def _answers(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2):
            return True
    except OSError:
        return False


def test_the_command_gets_a_live_server_that_stops_with_it(tmp_path: Path) -> None:
    command = f"{SHOW_URL}; import urllib.request; urllib.request.urlopen(os.environ['PREFECT_API_URL'] + '/health'); raise SystemExit(3)"
    finished = subprocess.run([sys.executable, "-m", "flows.server", sys.executable, "-c", command], cwd=tmp_path,
                              env=_environment(tmp_path), capture_output=True, text=True, timeout=180)
    assert finished.returncode == 3, finished.stderr
    api_url = re.search(r"child sees (\S+)", finished.stdout).group(1)
    assert api_url.startswith("http://127.0.0.1:")
    assert not _answers(api_url)
    assert (tmp_path / ".scan_cache" / "prefect-server.log").exists()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_sigterm_stops_the_command_what_it_started_and_the_server(tmp_path: Path) -> None:
    command = ("import subprocess; grandchild = subprocess.Popen(['sleep', '120']); "
               f"print('grandchild', grandchild.pid, flush=True); {SHOW_URL}; grandchild.wait()")
    wrapper = subprocess.Popen([sys.executable, "-m", "flows.server", sys.executable, "-c", command], cwd=tmp_path,
                               env=_environment(tmp_path), stdout=subprocess.PIPE, text=True)
    try:
        seen: dict[str, str] = {}
        while "child" not in seen:
            line = wrapper.stdout.readline()
            assert line, "the wrapper ended before its command started"
            if line.startswith(("grandchild", "child")):
                seen[line.split()[0]] = line.split()[-1]
        grandchild, api_url = int(seen["grandchild"]), seen["child"]
        assert _answers(api_url)
        started = time.monotonic()
        wrapper.send_signal(signal.SIGTERM)
        assert wrapper.wait(timeout=30) == 128 + signal.SIGTERM
        assert time.monotonic() - started < 30
        assert not _answers(api_url)
        deadline = time.monotonic() + 10
        while _alive(grandchild) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(grandchild)
    finally:
        if wrapper.poll() is None:  # a failed assertion: let the wrapper stop its server, too
            wrapper.send_signal(signal.SIGTERM)
            try:
                wrapper.wait(timeout=30)
            except subprocess.TimeoutExpired:
                wrapper.kill()


def test_an_existing_server_is_used_and_none_is_started(tmp_path: Path) -> None:
    finished = subprocess.run([sys.executable, "-m", "flows.server", sys.executable, "-c", SHOW_URL], cwd=tmp_path,
                              env=_environment(tmp_path, "http://127.0.0.1:9/api"), capture_output=True, text=True,
                              timeout=60)
    assert finished.returncode == 0
    assert "child sees http://127.0.0.1:9/api" in finished.stdout
    assert "Prefect server for this run" not in finished.stdout
    assert not (tmp_path / ".scan_cache").exists()
