#!/usr/bin/env bash
# Fashion-MNIST benchmark on a CPU: the 10,000 test images at 16x16 (about 40 min on 2 cores), trained and evaluated on
# themselves (the paper's full-data protocol on one split). Needs Debian's dataset-fashion-mnist
# (apt-get install dataset-fashion-mnist) or the IDX files elsewhere (FASHION_MNIST_ROOT).
# Run from the project root with the venv active; extra arguments go to dvc exp run.
#
#   bash bench/fashion_mnist.sh [-S key=value ...]            # the recipe, experiment fashion-mnist-cpu
#   SEED=1 bash bench/fashion_mnist.sh                         # pretext, scan and selflabel seeds 1: metrics
#                                                              # to bench/results/fashion_mnist/seed-1.json and
#                                                              # the table of every seed there to bench/results/fashion_mnist.md
#   EXP_NAME=fashion-auto bash bench/fashion_mnist.sh -S scan.num_clusters=auto
#   bash bench/fashion_mnist.sh ablation                      # bench/ablation.sh with this recipe
set -euo pipefail
cd "$(dirname "$0")/.."
root=${FASHION_MNIST_ROOT:-/usr/share/datasets/fashion-mnist}
recipe=(
  -S data.name=fashion_mnist -S "data.root=$root" -S data.image_size=16
  -S data.train_split=test -S data.eval_split=test
  -S augment.hflip=true -S augment.crop_min_scale=0.4
  -S pretext.epochs=120 -S scan.epochs=30 -S selflabel.epochs=15
  -S selflabel.threshold=0.999  # at 0.99 a sixth of the pseudo-labels were wrong and self-labeling drifted
)
if [ "${1:-}" = ablation ]; then
  shift
  exec bash bench/ablation.sh fashion_mnist "${recipe[@]}" "$@"
fi
seed=${SEED:-0}
name=${EXP_NAME:-fashion-mnist-seed-$seed}
start=$(date +%s)
python -m flows.server dvc exp run -n "$name" "${recipe[@]}" \
  -S "pretext.seed=$seed" -S "scan.seed=$seed" -S "selflabel.seed=$seed" "$@"
seconds=$(( $(date +%s) - start ))
echo "$name: $seconds s"
dvc metrics show
out=bench/results/fashion_mnist
mkdir -p "$out"
python - "$out/seed-$seed.json" "$seconds" <<'PY'
import json, sys
metrics = json.load(open("metrics/evaluate.json"))
metrics["wall_seconds"] = int(sys.argv[2])
json.dump(metrics, open(sys.argv[1], "w"), indent=1)
PY
python bench/seeds_table.py "$out"/seed-*.json | tee bench/results/fashion_mnist.md
