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
import os
import re
import shutil
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


def measure(stage: str, project: Path, env: dict[str, str], log: Path) -> dict[str, float]:
    """Run one stage under GNU time; its peak RSS (MB) and wall time (s)."""
    with open(log, "w") as output:
        started = time.perf_counter()
        result = subprocess.run([GNU_TIME, "-v", sys.executable, "-m", "flows", stage], cwd=project, env=env,
                                stdout=output, stderr=subprocess.STDOUT)
        wall = time.perf_counter() - started
    text = log.read_text()
    if result.returncode != 0:
        raise RuntimeError(f"{stage} failed in {project} (exit {result.returncode}); see {log}")
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    return {"peak_mb": peak_kb / 1024, "wall_s": wall}


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
        row += [f"{results[size][stage]['peak_mb']:.0f}" if stage in results[size] else "not run" for size in sizes]
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
    state = code_state()
    results: dict[int, dict[str, dict[str, float]]] = {}
    try:
        wait_until_healthy(api_url, server, 120)
        env = {**base, "PREFECT_API_URL": api_url}
        for size in args.sizes:
            project = make_project(args.work / f"n{size}", ensure_folder(args.data, size))
            results[size] = {}
            for stage in args.stages:
                if f"{size}:{stage}" in args.skip:
                    _borrow_outputs(stage, args.work / f"n{min(args.sizes)}", project)
                    print(f"{size:>7} {stage:<8} skipped", flush=True)
                    continue
                results[size][stage] = measure(stage, project, env, args.work / f"n{size}-{stage}.log")
                print(f"{size:>7} {stage:<8} peak {results[size][stage]['peak_mb']:7.0f} MB  "
                      f"wall {results[size][stage]['wall_s']:6.0f} s", flush=True)
    finally:
        stop_group(server)
    report = "\n".join([
        f"# Benchmark 3: peak RSS per stage (python bench/memory.py --sizes {' '.join(map(str, args.sizes))})",
        f"# {started}, {os.cpu_count()} CPUs (shared with other jobs), {state}",
        "# folders of 64x64 RGB PNGs (bench/make_rgb_folder.py); /usr/bin/time -v of `python -m flows <stage>`;",
        "# pretext: 1 epoch, small_cnn; a shared Prefect server outside the measured process",
        "",
        table(results, args.stages),
    ])
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report + "\n")


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
