#!/usr/bin/env bash
# A user's folder of PNG files, as a new user would try it: only data.name and data.root change.
# Writes 600 Fashion-MNIST test images as PNGs, with class subfolders and without, then runs both.
set -euo pipefail
out=${1:-/tmp/scan-folder-demo}
python - "$out" <<'PY'
import sys
from pathlib import Path
import numpy as np
from PIL import Image
from scan_core.data.readers import read_fashion_mnist
images = read_fashion_mnist(Path("/usr/share/datasets/fashion-mnist"), "test")
out = Path(sys.argv[1])
for index in range(600):
    name = images.class_names[images.labels[index]].replace("/", "-").replace(" ", "_")
    image = Image.fromarray(images.images[index, ..., 0])
    for folder in (out / "with_classes" / name, out / "flat"):
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"img_{index:04d}.png")
PY
for variant in with_classes flat; do
  dvc exp run -n "folder-$variant" -S data.name=folder -S "data.root=$out/$variant"
  cat metrics/evaluate.json
done
