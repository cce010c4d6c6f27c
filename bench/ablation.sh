#!/usr/bin/env bash
# The paper's ablation (Table 1) on one data set, one pretext run reused by every row:
# pretext + k-means; SCAN with SimCLR's augmentations; SCAN with strong augmentations;
# + self-labeling; SCAN with K = 0 (each image paired with itself), 5 and 20 neighbors.
#
#   bash bench/ablation.sh NAME [extra dvc exp run args, e.g. the Fashion-MNIST recipe]
#
# Each row is a DVC experiment (ablation-NAME-<row>); only scan, selflabel and evaluate run
# again between them. Writes bench/results/ablation-NAME.md and the per-row metrics beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PREFECT_API_URL:-}" ]; then
  exec python -m flows.server bash "$0" "$@"   # one Prefect server for all the rows
fi
name=${1:?usage: bash bench/ablation.sh NAME [dvc exp run args]}
shift
out=bench/results/ablation-$name
# Only the strong row's self-labeling is in the table: the others skip it (selflabel.epochs=0).
declare -A rows=(
  [strong]=""
  [simclr]="-S scan.augmentation=simclr -S selflabel.epochs=0"
  [k0]="-S scan.num_neighbors=0 -S selflabel.epochs=0"
  [k20]="-S scan.num_neighbors=20 -S selflabel.epochs=0"
)
# dvc exp run leaves each row's params in the workspace: every row starts again from the
# params.yaml the script found, or a row would inherit the one before it (simclr augmentations
# in the K rows, K = 20 in the next seed's strong row).
params=$(mktemp)
cp params.yaml "$params"
trap 'cp "$params" params.yaml; rm -f "$params"' EXIT
for row in strong simclr k0 k20; do
  start=$(date +%s)
  cp "$params" params.yaml
  dvc exp remove "ablation-$name-$row" >/dev/null 2>&1 || true  # rerunning replaces the row
  # shellcheck disable=SC2086
  dvc exp run -n "ablation-$name-$row" "$@" ${rows[$row]}
  mkdir -p "$out"
  python - "$out/$row.json" "$(( $(date +%s) - start ))" <<'PY'
import json, sys
metrics = json.load(open("metrics/evaluate.json"))
metrics["wall_seconds"] = int(sys.argv[2])
json.dump(metrics, open(sys.argv[1], "w"), indent=1)
PY
done
python bench/ablation_table.py "$out" | tee "$out.md"
