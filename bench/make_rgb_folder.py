"""Write COUNT 64x64 RGB PNG files into one flat folder, for the memory benchmark
(`bench/memory.py`): Fashion-MNIST pictures (Debian's `dataset-fashion-mnist`) scaled up to
64 px and tinted with a colour drawn per file, so every file is a distinct real-looking RGB
image whose PNG compresses like a photo's thumbnail rather than like noise.

    python bench/make_rgb_folder.py OUT COUNT [--seed 0]

Files are named img_0000000.png, ... in order, so a folder of the first N files of a larger
one holds the same images (`--link-from` hard-links them instead of encoding again).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from PIL import Image

from make_png_folder import fashion

SIDE = 64


def tinted(gray: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """A 28x28 grey picture scaled to 64x64 and multiplied by an RGB colour."""
    large = np.asarray(Image.fromarray(gray).resize((SIDE, SIDE), Image.Resampling.BILINEAR), dtype=np.float32)
    return np.clip(large[..., None] * colour[None, None, :], 0, 255).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("count", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--link-from", type=Path, help="a larger folder written by this script: hard-link its first COUNT files")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    names = [f"img_{index:07d}.png" for index in range(args.count)]
    if args.link_from:
        for name in names:
            if not (args.out / name).exists():
                os.link(args.link_from / name, args.out / name)
        print(f"linked {args.count} files from {args.link_from} into {args.out}")
        return
    train, _, _ = fashion("train")
    test, _, _ = fashion("test")
    pictures = np.concatenate([train, test])
    colours = np.random.default_rng(args.seed).uniform(0.35, 1.0, size=(args.count, 3)).astype(np.float32)
    for index, name in enumerate(names):
        target = args.out / name
        if not target.exists():
            Image.fromarray(tinted(pictures[index % len(pictures)], colours[index])).save(target)
    print(f"wrote {args.count} 64x64 RGB PNG files to {args.out}")


if __name__ == "__main__":
    main()
