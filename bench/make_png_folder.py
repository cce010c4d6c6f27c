"""Write Fashion-MNIST images as a user's folder of PNG files: one subfolder per class
(balanced, `per_class` images each) and the same images in one flat folder (no labels).

    python bench/make_png_folder.py OUT [--per-class 500] [--split test]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from scan_core.data.readers import read_fashion_mnist

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--per-class", type=int, default=500)
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    images = read_fashion_mnist(FASHION_MNIST, args.split)
    for label, class_name in enumerate(images.class_names):
        name = class_name.replace("/", "-").replace(" ", "_")
        for index in np.flatnonzero(images.labels == label)[: args.per_class]:
            image = Image.fromarray(images.images[index, ..., 0])
            for folder in (args.out / "with_classes" / name, args.out / "flat"):
                folder.mkdir(parents=True, exist_ok=True)
                image.save(folder / f"img_{index:05d}.png")
    print(f"wrote {10 * args.per_class} PNG files to {args.out}/with_classes and {args.out}/flat")


if __name__ == "__main__":
    main()
