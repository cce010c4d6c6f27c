#!/usr/bin/env bash
# `scan cluster` on one folder of images over several seeds, with whatever `scan` is on PATH
# (a pip install), as a new user runs it: seed 0 is the plain command, seed s > 0 adds
# -S pretext.seed=s -S scan.seed=s -S selflabel.seed=s (another experiment in the same project).
# Each seed's metrics/evaluate.json and wall time go to OUT/seed-<s>.json, the table to OUT/table.md.
#
#   bash bench/own_images.sh FOLDER CLUSTERS PROJECT OUT [N=3]
#   bash bench/own_images.sh /work/data/colour 8 /work/runs/colour bench/results/own_images/colour
set -euo pipefail
folder=$1 clusters=$2 project=$3 out=$4 count=${5:-3}
bench=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
for seed in $(seq 0 $((count - 1))); do
  seeds=()
  [ "$seed" -gt 0 ] && seeds=(-S "pretext.seed=$seed" -S "scan.seed=$seed" -S "selflabel.seed=$seed")
  start=$(date +%s)
  scan cluster "$folder" --project "$project" --clusters "$clusters" "${seeds[@]}" | tee "$out/seed-$seed.log" | tail -8
  python3 - "$project/metrics/evaluate.json" "$out/seed-$seed.json" "$(( $(date +%s) - start ))" <<'PY'
import json, sys
metrics = json.load(open(sys.argv[1]))
metrics["wall_seconds"] = int(sys.argv[3])
json.dump(metrics, open(sys.argv[2], "w"), indent=1)
PY
done
python3 "$bench/seeds_table.py" "$out"/seed-*.json | tee "$out/table.md"
