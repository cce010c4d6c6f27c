"""Benchmark 3: peak memory of prepare, pretext (1 epoch, small_cnn) and embed on folders of
64x64 RGB PNGs of two sizes; a stage that streams its images peaks at about the same
resident size on both (target: the larger at most 1.3 times the smaller).

    python bench/memory.py [--sizes 20000 100000] [--data /work/data/rgb64] [--work /work/runs/memory]
                           [--stages prepare pretext embed] [--out bench/results/memory.txt]

Each size gets a throwaway copy of the project (code and params; data.name folder,
pretext.backbone small_cnn, pretext.epochs 1) under ``--work``, and each stage runs alone as
dvc.yaml runs it, ``python -m flows <stage>``, under GNU time (``/usr/bin/time -v``: the
maximum resident set size of the stage process, mapped file pages included), against one
Prefect server started for the whole benchmark so that the server's memory is not counted.
Folders missing under ``--data`` are written first (``bench/make_rgb_folder.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
COPIED = ("scan_core", "tasks", "flows", "dvc.yaml", "params.yaml", "pyproject.toml")
SETTINGS = {"data": {"name": "folder", "image_size": 64}, "pretext": {"backbone": "small_cnn", "epochs": 1}}
GNU_TIME = "/usr/bin/time"
CODE_NOTE = ".bench-code"  # in each copy: the code it was copied from


def make_project(folder: Path, data_root: Path) -> Path:
    """A copy of the project's code with the benchmark's params and no artifacts."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name in COPIED:
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, folder / name,
                                                               **({"ignore": shutil.ignore_patterns("__pycache__")}
                                                                  if source.is_dir() else {}))
    params = yaml.safe_load((folder / "params.yaml").read_text())
    for group, values in SETTINGS.items():
        params[group].update(values)
    params["data"]["root"] = str(data_root)
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (folder / CODE_NOTE).write_text(code_state())
    return folder


def ensure_folder(data: Path, count: int) -> Path:
    """``data/n<count>``: count PNG files, hard-linked from a larger folder when one exists."""
    folder = data / f"n{count}"
    if folder.is_dir() and sum(1 for _ in folder.glob("*.png")) >= count:
        return folder
    larger = sorted((path for path in data.glob("n*") if path.name[1:].isdigit() and int(path.name[1:]) > count
                     and sum(1 for _ in path.glob("*.png")) >= int(path.name[1:])), key=lambda path: path.name)
    extra = ["--link-from", str(larger[0])] if larger else []
    subprocess.run([sys.executable, str(ROOT / "bench" / "make_rgb_folder.py"), str(folder), str(count), *extra],
                   check=True, cwd=ROOT / "bench")
    return folder


def measure(stage: str, project: Path, env: dict[str, str], log: Path, limit_s: float | None = None) -> dict:
    """Run one stage under GNU time; its peak RSS (MB) and wall time (s), also written next to
    its log (``.json``), so a later run with ``--reuse`` can complete the table. With
    ``limit_s`` the stage is stopped (SIGTERM) after that long: its peak is then the peak of
    the part that ran, marked partial."""
    with open(log, "w") as output:
        started = time.perf_counter()
        process = subprocess.Popen([GNU_TIME, "-v", sys.executable, "-m", "flows", stage], cwd=project, env=env,
                                   stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            process.wait(timeout=limit_s)
            stopped = False
        except subprocess.TimeoutExpired:
            # The stage, not GNU time (which then reports what the stage used), then any stragglers.
            for child in Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split():
                os.kill(int(child), signal.SIGTERM)
            process.wait()
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            stopped = True
        wall = time.perf_counter() - started
    text = log.read_text()
    if process.returncode != 0 and not stopped:
        raise RuntimeError(f"{stage} failed in {project} (exit {process.returncode}); see {log}")
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    code = (project / CODE_NOTE).read_text() if (project / CODE_NOTE).exists() else "not recorded"
    result = {"peak_mb": peak_kb / 1024, "wall_s": wall, "code": code, "partial": stopped,
              "measured": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    log.with_suffix(".json").write_text(json.dumps(result, indent=1))
    return result


def earlier_result(log: Path, project: Path) -> dict | None:
    """A measurement an earlier run left: its ``.json``, else a finished GNU time log."""
    if log.with_suffix(".json").exists():
        return json.loads(log.with_suffix(".json").read_text())
    text = log.read_text() if log.exists() else ""
    if "Exit status: 0" not in text or "Command terminated by signal" in text:
        return None
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    clock = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text).group(1)
    wall = sum(float(part) * 60 ** power for power, part in enumerate(reversed(clock.split(":"))))
    code = (project / CODE_NOTE).read_text() if (project / CODE_NOTE).exists() else "not recorded"
    measured = datetime.fromtimestamp(log.stat().st_mtime, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return {"peak_mb": peak_kb / 1024, "wall_s": wall, "code": code, "partial": False, "measured": measured}


def code_state() -> str:
    """The commit the copies were made from, and whether the working tree differed from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.rstrip("\n")

    changed = [line[3:] for line in git("status", "--short", "--", *COPIED).splitlines()]
    note = f", plus uncommitted changes to {len(changed)} file(s): {' '.join(changed)}" if changed else ""
    return f"commit {git('rev-parse', '--short', 'HEAD')} ({git('log', '-1', '--format=%s')[:80]}){note}"


def table(results: dict[int, dict[str, dict[str, float]]], stages: list[str]) -> str:
    sizes = sorted(results)
    header = ["stage", *[f"peak RSS, {size:,} images (MB)" for size in sizes],
              *[f"wall, {size:,} (s)" for size in sizes]]
    if len(sizes) == 2:
        header.append(f"ratio {sizes[1]:,} / {sizes[0]:,}")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for stage in stages:
        row = [stage]
        row += [f"{results[size][stage]['peak_mb']:.0f}{' (partial)' if results[size][stage].get('partial') else ''}"
                if stage in results[size] else "not run" for size in sizes]
        row += [f"{results[size][stage]['wall_s']:.0f}" if stage in results[size] else "-" for size in sizes]
        if len(sizes) == 2:
            both = all(stage in results[size] for size in sizes)
            row.append(f"{results[sizes[1]][stage]['peak_mb'] / results[sizes[0]][stage]['peak_mb']:.2f}"
                       if both else "-")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[20000, 100000])
    parser.add_argument("--data", type=Path, default=Path("/work/data/rgb64"))
    parser.add_argument("--work", type=Path, default=Path("/work/runs/memory"))
    parser.add_argument("--stages", nargs="+", default=["prepare", "pretext", "embed"],
                        help="stages to measure, in pipeline order (pretext needs prepare, embed needs pretext)")
    parser.add_argument("--skip", nargs="*", default=[], metavar="SIZE:STAGE",
                        help="measurements to leave out, e.g. 100000:pretext (embed then reads a pretext model "
                             "trained on the smaller folder, copied in)")
    parser.add_argument("--limit", nargs="*", default=[], metavar="SIZE:STAGE:SECONDS",
                        help="stop a stage after so many seconds and report the peak of the part that ran "
                             "(marked partial; later stages then take its outputs from --donor)")
    parser.add_argument("--donor", type=Path, help="the project copy skipped stages take their outputs from "
                        "(default: the smallest size's)")
    parser.add_argument("--reuse", action="store_true",
                        help="keep existing project copies and their artifacts, and report earlier measurements "
                             "of stages not run now (each row names when and on what code it was measured)")
    parser.add_argument("--out", type=Path, help="also write the report here")
    args = parser.parse_args()
    if not Path(GNU_TIME).exists():
        sys.exit(f"{GNU_TIME} (GNU time) is missing: apt-get install -y time")
    from flows.server import free_port, stop_group, wait_until_healthy

    args.work.mkdir(parents=True, exist_ok=True)
    base = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}
    base["PREFECT_HOME"] = str(args.work / "prefect-home")
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                               "--port", str(port)], env=base, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    results: dict[int, dict[str, dict[str, float]]] = {}
    try:
        wait_until_healthy(api_url, server, 120)
        env = {**base, "PREFECT_API_URL": api_url}
        for size in args.sizes:
            project = args.work / f"n{size}"
            if not (args.reuse and project.is_dir()):
                make_project(project, ensure_folder(args.data, size))
            results[size] = {}
            for stage in args.stages:
                if f"{size}:{stage}" in args.skip:
                    _borrow_outputs(stage, args.donor or args.work / f"n{min(args.sizes)}", project)
                    print(f"{size:>7} {stage:<8} skipped", flush=True)
                    continue
                if args.reuse and (found := earlier_result(args.work / f"n{size}-{stage}.log", project)):
                    results[size][stage] = found
                    print(f"{size:>7} {stage:<8} measured earlier ({results[size][stage]['measured']})", flush=True)
                    continue
                limits = [float(item.rsplit(":", 1)[1]) for item in args.limit if item.startswith(f"{size}:{stage}:")]
                _remove_outputs(stage, project)  # else a reused copy's stage is a cache hit
                results[size][stage] = measure(stage, project, env, args.work / f"n{size}-{stage}.log",
                                               limits[0] if limits else None)
                if results[size][stage]["partial"]:
                    _borrow_outputs(stage, args.donor or args.work / f"n{min(args.sizes)}", project)
                print(f"{size:>7} {stage:<8} peak {results[size][stage]['peak_mb']:7.0f} MB  "
                      f"wall {results[size][stage]['wall_s']:6.0f} s", flush=True)
    finally:
        stop_group(server)
    report = "\n".join([
        f"# Benchmark 3: peak RSS per stage (python bench/memory.py {' '.join(sys.argv[1:])})",
        f"# run started {started}, {os.cpu_count()} CPUs (shared with other jobs); what each row ran on: below",
        "# folders of 64x64 RGB PNGs (bench/make_rgb_folder.py); /usr/bin/time -v of `python -m flows <stage>`;",
        "# pretext: 1 epoch, small_cnn; a shared Prefect server outside the measured process",
        "",
        table(results, args.stages),
        "",
        "(partial): the stage was stopped (--limit) after the wall time shown; its peak is that of the steps that ran.",
        *sorted({f"- {size} {stage}: measured {result['measured']} on {result['code']}"
                 for size, stages in results.items() for stage, result in stages.items()}),
    ])
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report + "\n")


def _remove_outputs(stage: str, project: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from tasks.stages import STAGES

    for output in STAGES[stage].outputs:
        target = project / output
        shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)


def _borrow_outputs(stage: str, donor: Path, project: Path) -> None:
    """Give ``project`` the outputs ``stage`` left in ``donor`` (a model does not depend on the
    number of images), so the stages after it can still be measured."""
    sys.path.insert(0, str(ROOT))
    from tasks.stages import STAGES

    for output in STAGES[stage].outputs:
        source, target = donor / output, project / output
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        elif source.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


if __name__ == "__main__":
    main()
