#!/usr/bin/env bash
# Run the pipeline for several seeds as DVC experiments and write a Markdown table of
# ACC (mean ± std, min) for k-means, SCAN and self-labeling.
#
#   bash bench/seeds.sh [N=5] [extra dvc exp run args, e.g. -S data.name=folder -S data.root=/imgs]
#
# Seed s sets pretext.seed, scan.seed and selflabel.seed to s. Each run is a DVC experiment
# named seed-<s> (see `dvc exp show`); its metrics/evaluate.json is copied to
# bench/results/seeds/seed-<s>.json and the table is written to bench/results/seeds.md.
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-5}
shift || true
out=bench/results/seeds
mkdir -p "$out"
rm -f "$out"/seed-*.json
for seed in $(seq 0 $((count - 1))); do
  start=$(date +%s)
  python -m flows.server dvc exp run --force -n "seed-$seed" -S "pretext.seed=$seed" -S "scan.seed=$seed" -S "selflabel.seed=$seed" "$@"
  mkdir -p "$out"  # dvc exp run may have removed the emptied folder from the workspace
  python - "$out/seed-$seed.json" "$(( $(date +%s) - start ))" <<'PY'
import json, sys
metrics = json.load(open("metrics/evaluate.json"))
metrics["wall_seconds"] = int(sys.argv[2])
json.dump(metrics, open(sys.argv[1], "w"), indent=1)
PY
done
python bench/seeds_table.py "$out"/seed-*.json | tee bench/results/seeds.md
