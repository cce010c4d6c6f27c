#!/usr/bin/env bash
# A user's folder of PNG files, run as a new user would: only data.name and data.root change.
# Writes 28x28 PNGs (SOURCE=fashion: Fashion-MNIST test images, SOURCE=mnist5k: 5,000 MNIST
# digits; PER_CLASS per class, default 500: 5,000 files) with class subfolders and without,
# then runs both as DVC experiments.
#
#   [SOURCE=mnist5k] bash bench/folder_png.sh [OUT=/tmp/scan-folder-demo] [with_classes|flat|both]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/scan-folder-demo}
which=${2:-both}
python bench/make_png_folder.py "$out" --per-class "${PER_CLASS:-500}" --source "${SOURCE:-fashion}"
variants=$([ "$which" = both ] && echo "with_classes flat" || echo "$which")
for variant in $variants; do
  start=$(date +%s)
  python -m flows.server dvc exp run --force -n "folder-$variant" -S data.name=folder -S "data.root=$out/$variant"
  echo "folder-$variant: $(( $(date +%s) - start )) s"
  dvc metrics show
done
