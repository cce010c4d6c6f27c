"""Markdown table of the ablation rows written by bench/ablation.sh (paper Table 1 layout).

    python bench/ablation_table.py bench/results/ablation-NAME
    python bench/ablation_table.py bench/results/ablation-digits-seed0 bench/results/ablation-digits-seed1 ...

With several folders (one per seed) each row shows every seed's ACC, then mean ± std and min
of ACC and the mean NMI: one seed's ranking of the rows proves little.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from seeds_table import spread_cells  # bench/ is the script's folder, first on sys.path

ROWS = [
    ("pretext + k-means", "strong", "kmeans"),
    ("SCAN loss, SimCLR augmentations", "simclr", "scan"),
    ("SCAN loss, strong augmentations (K = 5)", "strong", "scan"),
    ("+ self-labeling", "strong", "selflabel"),
    ("SCAN, K = 0 (each image with itself)", "k0", "scan"),
    ("SCAN, K = 20", "k20", "scan"),
]


def _runs(folder: Path) -> dict[str, dict]:
    return {path.stem: json.loads(path.read_text()) for path in folder.glob("*.json")}


def _values(runs: dict[str, dict], run: str, model: str) -> dict | None:
    values = runs.get(run, {}).get(model, {})
    return values if "acc" in values else None


def table(folder: Path) -> str:
    runs = _runs(folder)
    lines = ["| setup | ACC | NMI | ARI |", "|---|---|---|---|"]
    for title, run, model in ROWS:
        values = _values(runs, run, model)
        if values:
            lines.append(f"| {title} | {values['acc']:.3f} | {values['nmi']:.3f} | {values['ari']:.3f} |")
        else:
            lines.append(f"| {title} | not run | | |")
    times = ", ".join(f"{run} {runs[run]['wall_seconds']} s" for run in ("strong", "simclr", "k0", "k20") if run in runs)
    return "\n".join(lines) + f"\n\nWall time per experiment: {times}.\n"


def seeds_table(folders: list[Path]) -> str:
    every = [_runs(folder) for folder in folders]
    header = ["setup"] + [f"{folder.name} ACC" for folder in folders] + ["ACC mean ± std", "ACC min", "NMI mean"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for title, run, model in ROWS:
        found = [_values(runs, run, model) for runs in every]
        cells = [f"{values['acc']:.3f}" if values else "not run" for values in found]
        accs = [values["acc"] for values in found if values]
        nmis = [values["nmi"] for values in found if values]
        summary = spread_cells(accs) + [f"{statistics.mean(nmis):.3f}"] if accs else ["", "", ""]
        lines.append("| " + " | ".join([title] + cells + summary) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    folders = [Path(argument) for argument in sys.argv[1:]]
    print(table(folders[0]) if len(folders) == 1 else seeds_table(folders), end="")
