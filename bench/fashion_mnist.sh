#!/usr/bin/env bash
# Fashion-MNIST benchmark on a CPU: the 10,000 test images at 16x16, evaluated on themselves.
# Needs Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist) or the IDX
# files elsewhere (FASHION_MNIST_ROOT). Run from the project root with the venv active.
set -euo pipefail
root=${FASHION_MNIST_ROOT:-/usr/share/datasets/fashion-mnist}
python -m flows.server dvc exp run -n fashion-mnist-cpu \
  -S data.name=fashion_mnist -S "data.root=$root" -S data.image_size=16 \
  -S data.train_split=test -S data.eval_split=test \
  -S augment.hflip=true -S augment.crop_min_scale=0.4 -S augment.cutout_fraction=0.375 \
  -S pretext.epochs=20 -S pretext.batch_size=256 \
  -S scan.epochs=12 -S scan.batch_size=256 \
  -S selflabel.epochs=6 -S selflabel.batch_size=512
dvc exp show --only-changed
