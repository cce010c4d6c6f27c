"""Two runs of one stage cannot interleave their outputs: the second waits for the first."""

from __future__ import annotations

import subprocess
import sys
import time

from filelock import FileLock

from tests.conftest import make_project

# `python -m flows prepare`, with filelock's own debug log (every attempt on a lock and its
# outcome) written to the file named by argv[1]; nothing about the run itself is changed.
OBSERVED_STAGE = """
import logging, sys
handler = logging.FileHandler(sys.argv[1])
handler.setFormatter(logging.Formatter("%(message)s"))
observed = logging.getLogger("filelock")
observed.addHandler(handler)
observed.setLevel(logging.DEBUG)
from flows.__main__ import main
sys.exit(main(["prepare"]))
"""
DEADLINE_S = 600  # only bounds a failing run; a passing one moves on as soon as it may


def test_a_stage_waits_while_another_run_of_it_holds_the_lock(tmp_path, prefect_api):
    project = make_project(tmp_path / "project")
    (project / ".scan_cache/locks").mkdir(parents=True)
    lock_log = tmp_path / "filelock.log"
    lock_log.touch()

    def started_writing() -> list[str]:
        return sorted(path.name for path in (project / "artifacts").glob("*prepare*"))

    with FileLock(project / ".scan_cache/locks/prepare.lock"):  # held by this test, provably
        process = subprocess.Popen([sys.executable, "-c", OBSERVED_STAGE, str(lock_log)], cwd=project,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            # Wait until the stage has tried the lock and been refused: from then on it is
            # waiting, not merely slow to start. Were it let through, it would write
            # artifacts/prepare (or its staging folder) or exit, and the loop fails at once.
            deadline = time.monotonic() + DEADLINE_S
            while not any("prepare.lock" in line and "not acquired" in line
                          for line in lock_log.read_text().splitlines()):
                assert not started_writing(), f"the stage wrote {started_writing()} while the lock was held"
                assert process.poll() is None, process.communicate()[0][-2000:]
                assert time.monotonic() < deadline, "the stage never tried the lock:\n" + lock_log.read_text()
                time.sleep(0.2)
            assert not started_writing() and process.poll() is None
        except BaseException:
            process.kill()
            raise
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output[-2000:]
    assert (project / "artifacts/prepare/manifest.parquet").exists()
