"""A Markdown table of per-seed results: ACC and NMI per seed, mean ± std and min, for k-means,
SCAN and self-labeling, the label-free health check's verdict, plus the checks the method must
pass on every seed.

    python bench/seeds_table.py bench/results/seeds/seed-*.json
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

MODELS = ("kmeans", "scan", "selflabel")


def spread_cells(values: list[float]) -> list[str]:
    """The summary cells of a row over seeds: mean ± std (0 for one seed), then min."""
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return [f"{statistics.mean(values):.3f} ± {spread:.3f}", f"{min(values):.3f}"]


def table(runs: dict[str, dict]) -> str:
    names = list(runs)
    lines = ["| model | " + " | ".join(names) + " | mean ± std | min |",
             "|---|" + "---|" * (len(names) + 2)]
    for metric in ("acc", "nmi"):
        for model in MODELS:
            values = [runs[name][model][metric] for name in names]
            lines.append(f"| {model} {metric.upper()} | " + " | ".join([f"{value:.3f}" for value in values] + spread_cells(values)) + " |")
    agreement = [runs[name]["scan"].get("health", {}).get("neighbor_agreement") for name in names]
    if all(value is not None for value in agreement):
        lines.append("| SCAN neighbor agreement | " + " | ".join(f"{value:.3f}" for value in agreement)
                     + f" | {statistics.mean(agreement):.3f} | {min(agreement):.3f} |")
    lines.append("| health warning | " + " | ".join("yes" if "health_warning" in runs[name] else "no" for name in names)
                 + " | | |")
    if all("wall_seconds" in runs[name] for name in names):
        seconds = [runs[name]["wall_seconds"] for name in names]
        lines.append("| wall time (s) | " + " | ".join(str(value) for value in seconds)
                     + f" | {statistics.mean(seconds):.0f} | {min(seconds)} |")
    scan_beats = sum(runs[name]["scan"]["acc"] >= runs[name]["kmeans"]["acc"] for name in names)
    kept = sum(runs[name]["selflabel"]["acc"] >= runs[name]["scan"]["acc"] - 0.01 for name in names)
    lines += ["", f"SCAN at least k-means on {scan_beats} of {len(names)} seeds; self-labeling at least "
              f"SCAN - 0.01 on {kept} of {len(names)}."]
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    runs = {Path(path).stem: json.loads(Path(path).read_text()) for path in sys.argv[1:]}
    missing = [name for name, run in runs.items() if any("acc" not in run.get(model, {}) for model in MODELS)]
    if missing:
        raise SystemExit(f"no labels (ACC) in {', '.join(missing)}: the seeds table needs a labeled data set")
    print(table(runs))


if __name__ == "__main__":
    main()
