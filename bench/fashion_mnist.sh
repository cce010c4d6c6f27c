#!/usr/bin/env bash
# Fashion-MNIST benchmark on a CPU: the 10,000 test images at 16x16 (about 40 min on 2 cores), trained and evaluated on
# themselves (the paper's full-data protocol on one split). Needs Debian's dataset-fashion-mnist
# (apt-get install dataset-fashion-mnist) or the IDX files elsewhere (FASHION_MNIST_ROOT).
# Run from the project root with the venv active; extra arguments go to dvc exp run.
#
#   bash bench/fashion_mnist.sh [-S key=value ...]            # the recipe, experiment fashion-mnist-cpu
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
start=$(date +%s)
python -m flows.server dvc exp run -n "${EXP_NAME:-fashion-mnist-cpu}" "${recipe[@]}" "$@"
echo "${EXP_NAME:-fashion-mnist-cpu}: $(( $(date +%s) - start )) s"
dvc metrics show
