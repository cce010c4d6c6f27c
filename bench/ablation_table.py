"""Markdown table of the ablation rows written by bench/ablation.sh (paper Table 1 layout).

    python bench/ablation_table.py bench/results/ablation-NAME
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROWS = [
    ("pretext + k-means", "strong", "kmeans"),
    ("SCAN loss, SimCLR augmentations", "simclr", "scan"),
    ("SCAN loss, strong augmentations (K = 5)", "strong", "scan"),
    ("+ self-labeling", "strong", "selflabel"),
    ("SCAN, K = 0 (each image with itself)", "k0", "scan"),
    ("SCAN, K = 20", "k20", "scan"),
]


def table(folder: Path) -> str:
    runs = {path.stem: json.loads(path.read_text()) for path in folder.glob("*.json")}
    lines = ["| setup | ACC | NMI | ARI |", "|---|---|---|---|"]
    for title, run, model in ROWS:
        if run in runs and "acc" in runs[run].get(model, {}):
            values = runs[run][model]
            lines.append(f"| {title} | {values['acc']:.3f} | {values['nmi']:.3f} | {values['ari']:.3f} |")
        else:
            lines.append(f"| {title} | not run | | |")
    times = ", ".join(f"{run} {runs[run]['wall_seconds']} s" for run in ("strong", "simclr", "k0", "k20") if run in runs)
    return "\n".join(lines) + f"\n\nWall time per experiment: {times}.\n"


if __name__ == "__main__":
    print(table(Path(sys.argv[1])), end="")
