"""A Markdown table of several runs side by side: ACC / NMI of k-means, SCAN and self-labeling,
the self-labeling margins over k-means, the label-free health check's verdict (today's check on
the modularity values the run recorded) and the sorted cluster
sizes beside the true class sizes.

    python bench/compare_table.py LABEL=metrics/evaluate.json [LABEL=other.json ...] [--sizes]

Each file is a run's ``metrics/evaluate.json`` (copies live under ``bench/results/``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scan_core.health import health_warning  # noqa: E402

MODELS = ("kmeans", "scan", "selflabel")


def row(label: str, metrics: dict, sizes: bool) -> str:
    cells = [label]
    cells += [f"{metrics[model]['acc']:.3f} / {metrics[model]['nmi']:.3f}" for model in MODELS]
    cells.append(f"{metrics['selflabel']['acc'] - metrics['kmeans']['acc']:+.3f} / "
                 f"{metrics['selflabel']['nmi'] - metrics['kmeans']['nmi']:+.3f}")
    health = {model: metrics[model].get("health", {}).get("modularity") for model in MODELS}
    # The verdict of today's check (scan_core.health) on the run's recorded health numbers.
    verdict = "warns" if health_warning({model: metrics[model]["health"] for model in MODELS}) else "quiet"
    if all(value is not None for value in health.values()):
        verdict += " (" + ", ".join(f"{value:.3f}" for value in health.values()) + ")"
    cells.append(verdict)
    if sizes:
        cells.append(", ".join(str(size) for size in sorted(metrics["selflabel"]["cluster_sizes"])))
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="LABEL=path/to/evaluate.json")
    parser.add_argument("--sizes", action="store_true", help="add the self-labeling cluster sizes, sorted")
    arguments = parser.parse_args()
    header = ["run", "k-means ACC / NMI", "SCAN ACC / NMI", "self-label ACC / NMI", "self-label - k-means",
              "health check (modularity k-means, SCAN, self-label)"]
    if arguments.sizes:
        header.append("self-label cluster sizes, sorted")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for run in arguments.runs:
        label, _, path = run.partition("=")
        print(row(label, json.loads(Path(path).read_text()), arguments.sizes))


if __name__ == "__main__":
    main()
