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


def test_sigterm_stops_the_command_and_the_server(tmp_path: Path) -> None:
    command = f"{SHOW_URL}; import time; time.sleep(120)"
    wrapper = subprocess.Popen([sys.executable, "-m", "flows.server", sys.executable, "-c", command], cwd=tmp_path,
                               env=_environment(tmp_path), stdout=subprocess.PIPE, text=True)
    try:
        line = ""
        while "child sees" not in line:
            line = wrapper.stdout.readline()
            assert line, "the wrapper ended before its command started"
        api_url = line.split()[-1]
        assert _answers(api_url)
        started = time.monotonic()
        wrapper.send_signal(signal.SIGTERM)
        assert wrapper.wait(timeout=30) == 128 + signal.SIGTERM
        assert time.monotonic() - started < 30
        assert not _answers(api_url)
    finally:
        if wrapper.poll() is None:
            wrapper.kill()


def test_an_existing_server_is_used_and_none_is_started(tmp_path: Path) -> None:
    finished = subprocess.run([sys.executable, "-m", "flows.server", sys.executable, "-c", SHOW_URL], cwd=tmp_path,
                              env=_environment(tmp_path, "http://127.0.0.1:9/api"), capture_output=True, text=True,
                              timeout=60)
    assert finished.returncode == 0
    assert "child sees http://127.0.0.1:9/api" in finished.stdout
    assert "Prefect server for this run" not in finished.stdout
    assert not (tmp_path / ".scan_cache").exists()
