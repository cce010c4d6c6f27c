"""Write a `data.name: folder` data set of real colour pictures: OUT/<class>/<emoji>.png.

The pictures are Microsoft's Fluent Emoji in their "3D" style (MIT licence): shaded,
textured renders of animals, food, vehicles, buildings, objects, people, flags, ... that
look like photographed cut-outs rather than flat clipart, 256x256 RGBA WebP files named
by their code points. They come from the npm package `@lobehub/fluent-emoji-3d`, and the
classes are the Unicode emoji groups, read from `emoji-test.txt` in Debian's
`unicode-data` package (Unicode 15.0):

    apt-get install -y -q unicode-data
    npm install -g @lobehub/fluent-emoji-3d@1.1.0

    python bench/make_colour_folder.py --out /work/data/colour

Each picture is flattened onto a white background, shrunk so its longer side is at most
--size pixels (128; the aspect ratio is kept, and these are square) and written as an RGB
PNG. Skin-tone variants (1,520 near copies of the people and hand pictures) are left out
unless --skin-tones is given. The default classes are the eight groups that hold at least
100 pictures, 1,769 in all; `activities` (85) can be added with --classes. Inputs are read
in sorted order and --per-class caps a class by a sample drawn with --seed, so the same
arguments always write the same files.
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

PACKAGE = "@lobehub/fluent-emoji-3d"
EMOJI_TEST = Path("/usr/share/unicode/emoji/emoji-test.txt")
SKIN_TONES = frozenset({"1f3fb", "1f3fc", "1f3fd", "1f3fe", "1f3ff"})
VARIATION_SELECTOR = "fe0f"
DEFAULT_CLASSES = (
    "animals_nature",
    "flags",
    "food_drink",
    "objects",
    "people_body",
    "smileys_emotion",
    "symbols",
    "travel_places",
)


@dataclass(frozen=True)
class Emoji:
    """One emoji of emoji-test.txt: its class (the slug of its group), subgroup and name."""

    group: str
    subgroup: str
    name: str


def slug(text: str) -> str:
    """'Animals & Nature' -> 'animals_nature'."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def key(code_points: list[str]) -> str:
    """A lower-case, '-'-joined code point sequence without the emoji variation selector,
    so 'fully-qualified' and 'unqualified' spellings of one emoji meet."""
    return "-".join(point.lower() for point in code_points if point.lower() != VARIATION_SELECTOR)


def read_emoji_test(path: Path) -> dict[str, Emoji]:
    """Map every sequence of emoji-test.txt to its group; the first spelling listed wins."""
    table: dict[str, Emoji] = {}
    group = subgroup = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# group:"):
            group = slug(line.split(":", 1)[1])
        elif line.startswith("# subgroup:"):
            subgroup = line.split(":", 1)[1].strip()
        elif line and not line.startswith("#") and ";" in line:
            points, rest = line.split(";", 1)
            # '... ; fully-qualified     # 🐶 E0.6 dog face'
            comment = rest.split("#", 1)[1] if "#" in rest else ""
            match = re.search(r"E\d+\.\d+\s+(.*)$", comment)
            name = match.group(1).strip() if match else ""
            table.setdefault(key(points.split()), Emoji(group, subgroup, name))
    return table


def find_assets(explicit: Path | None) -> Path:
    """The package's assets/ folder: --source, else under the global or local node_modules."""
    if explicit is not None:
        return explicit
    candidates = [Path("node_modules") / PACKAGE / "assets"]
    try:
        root = subprocess.run(["npm", "root", "-g"], capture_output=True, text=True, check=True).stdout.strip()
        candidates.insert(0, Path(root) / PACKAGE / "assets")
    except (OSError, subprocess.CalledProcessError):
        pass
    candidates += [Path(prefix) / PACKAGE / "assets" for prefix in ("/usr/lib/node_modules", "/usr/local/lib/node_modules")]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    sys.exit(f"no {PACKAGE} found; install it with: npm install -g {PACKAGE}@1.1.0 (or pass --source)")


def file_name(sequence: str, emoji: Emoji) -> str:
    """'1f436' + 'dog face' -> '1f436_dog-face.png'."""
    words = re.sub(r"[^a-z0-9]+", "-", emoji.name.lower()).strip("-")[:60]
    return f"{sequence}_{words}.png" if words else f"{sequence}.png"


def flatten(path: Path, size: int, background: tuple[int, int, int]) -> Image.Image:
    """The picture composited onto `background`, longer side shrunk to at most `size`."""
    with Image.open(path) as image:
        rgba = image.convert("RGBA")
    flat = Image.new("RGBA", rgba.size, background + (255,))
    flat.alpha_composite(rgba)
    picture = flat.convert("RGB")
    if max(picture.size) > size:
        scale = size / max(picture.size)
        shape = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
        picture = picture.resize(shape, Image.Resampling.LANCZOS)
    return picture


def collect(assets: Path, table: dict[str, Emoji], skin_tones: bool) -> dict[str, list[tuple[Path, str, Emoji]]]:
    """Pictures by class, each class in sorted file order, one picture per emoji."""
    by_class: dict[str, list[tuple[Path, str, Emoji]]] = {}
    seen: set[str] = set()
    for path in sorted(assets.glob("*.webp")):
        sequence = key(path.stem.split("-"))
        emoji = table.get(sequence)
        if emoji is None or sequence in seen or emoji.group == "component":
            continue
        if not skin_tones and SKIN_TONES.intersection(sequence.split("-")):
            continue
        seen.add(sequence)
        by_class.setdefault(emoji.group, []).append((path, sequence, emoji))
    return by_class


def clear(out: Path) -> None:
    """Remove the PNG files of an earlier run (OUT/*/*.png) and the folders left empty."""
    for old in sorted(out.glob("*/*.png")):
        old.unlink()
    for folder in sorted(out.iterdir()):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder to write OUT/<class>/*.png into")
    parser.add_argument("--classes", help=f"comma-separated class names (default: {','.join(DEFAULT_CLASSES)}); 'all' for every group")
    parser.add_argument("--per-class", type=int, default=0, help="at most this many pictures a class, a seeded sample (0: no cap)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the --per-class sample")
    parser.add_argument("--size", type=int, default=128, help="longest side in pixels (default 128)")
    parser.add_argument("--background", default="255,255,255", help="R,G,B behind transparent parts (default white)")
    parser.add_argument("--skin-tones", action="store_true", help="keep the skin-tone variants too")
    parser.add_argument("--source", type=Path, help=f"the assets/ folder of {PACKAGE} (default: found under npm's node_modules)")
    parser.add_argument("--emoji-test", type=Path, default=EMOJI_TEST, help=f"Unicode's emoji-test.txt (default {EMOJI_TEST}, Debian unicode-data)")
    parser.add_argument("--force", action="store_true", help="replace the PNG files of an earlier run in OUT")
    args = parser.parse_args()

    if not args.emoji_test.is_file():
        sys.exit(f"{args.emoji_test} not found; install it with: apt-get install -y -q unicode-data")
    parts = [int(part) for part in args.background.split(",")]
    if len(parts) != 3 or not all(0 <= part <= 255 for part in parts):
        sys.exit("--background takes R,G,B with each 0..255")
    background = (parts[0], parts[1], parts[2])
    by_class = collect(find_assets(args.source), read_emoji_test(args.emoji_test), args.skin_tones)
    if args.classes == "all":
        classes = sorted(by_class)
    else:
        classes = sorted(args.classes.split(",")) if args.classes else list(DEFAULT_CLASSES)
    unknown = [name for name in classes if name not in by_class]
    if unknown:
        sys.exit(f"unknown classes {unknown}; there are: {', '.join(f'{name} ({len(items)})' for name, items in sorted(by_class.items()))}")

    if args.out.exists() and any(args.out.iterdir()):
        if not args.force:
            sys.exit(f"{args.out} is not empty; pass --force to replace an earlier run's files")
        clear(args.out)
    rng = random.Random(args.seed)
    counts: Counter[str] = Counter()
    for name in classes:
        items = by_class[name]
        if 0 < args.per_class < len(items):
            items = sorted(rng.sample(items, args.per_class), key=lambda item: item[0].name)
        folder = args.out / name
        folder.mkdir(parents=True, exist_ok=True)
        for path, sequence, emoji in items:
            flatten(path, args.size, background).save(folder / file_name(sequence, emoji), optimize=False)
            counts[name] += 1
    width = max(len(name) for name in classes)
    for name in classes:
        print(f"{name:<{width}}  {counts[name]:5d}")
    print(f"{'total':<{width}}  {sum(counts.values()):5d}  ({len(classes)} classes) -> {args.out}")


if __name__ == "__main__":
    main()
