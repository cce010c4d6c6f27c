"""Two runs of one stage cannot interleave their outputs: the second waits for the first."""

from __future__ import annotations

import subprocess
import sys
import time

from filelock import FileLock

from tests.conftest import make_project


def test_a_stage_waits_while_another_run_of_it_holds_the_lock(tmp_path, prefect_api):
    project = make_project(tmp_path / "project")
    lock = FileLock(project / ".scan_cache/locks/prepare.lock")
    (project / ".scan_cache/locks").mkdir(parents=True)
    with lock:
        process = subprocess.Popen([sys.executable, "-m", "flows", "prepare"], cwd=project,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(30)
        assert process.poll() is None, process.communicate()[0][-2000:]
        assert not (project / "artifacts/prepare").exists()
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output[-2000:]
    assert (project / "artifacts/prepare/manifest.parquet").exists()
