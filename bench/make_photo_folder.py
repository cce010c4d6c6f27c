"""Write a `data.name: folder` data set of real PHOTOGRAPHS: OUT/<class>/<source>_<name>.png.

Every picture is a camera photograph (a cut-out on a transparent background or a full
frame) taken from Debian packages of educational software; drawings, clipart, renders and
scientific illustrations are left out by the hand-checked rules and lists below (each list
was made by looking at every candidate picture). Install the packages with

    apt-get update
    apt-get install -y --no-install-recommends \\
        tuxpaint-stamps-default gcompris-qt-data qabcs-data libdlib19.1 xemacs21-support

    python bench/make_photo_folder.py --out /work/data/photos

(Debian 12 "bookworm": tuxpaint-stamps-default 2022.06.04-1, gcompris-qt-data 3.1-2,
qabcs-data 2.0.0, libdlib19.1 19.24, xemacs21-support 21.4.24; libdlib19.1's pictures are
under /usr/share/doc, so an image that drops /usr/share/doc through a dpkg path-exclude
loses the `faces` class.) Where the pictures come from:

* tuxpaint-stamps-default (/usr/share/tuxpaint/stamps/<category>/...): photo cut-outs.
  Rule: PNG stamps only, none under a `cartoon/` folder, none named *_mirror*, and none
  that has an SVG of the same name beside it (those PNGs are renders of the SVG
  drawing); then a hand-checked list of drawings is dropped (TUX_EXCLUDE) or only a
  hand-checked list is kept (include=...).
* gcompris-qt-data (/usr/share/gcompris-qt/rcc/<activity>.rcc): Qt resource bundles, read
  here by a small parser of the documented RCC format (zlib-compressed entries). Only
  folders that hold nothing but photographs are used (the categorisation activity's
  fishes/monuments/tools/renewable, erase's animals, the explore_* activities); the
  painting, cartoon and rendered-fish folders are not.
* qabcs-data (/usr/share/qabcs/abcs/all/pics/<topic>/): a mix of photographs and drawings;
  only the hand-checked photographs in QABCS_FOOD and QABCS_INSTRUMENTS are used.
* libdlib19.1 (/usr/share/doc/libdlib19.1/examples/johns/): 55 face photos of 5 people
  (one is stored twice, so 54).
* xemacs21-support (/usr/share/xemacs-21.4.24/etc/photos/): developers' portrait photos;
  the hand-checked XEMACS_FACES (the caricature, logo, cat, dog, group and full-body
  pictures and the `*m.png` duplicates left out).

Classes and what they hold with these versions: animals 199, food 95, faces 84,
landmarks 76, instruments 59, tools 51, plants 39, energy 29 (dams, solar panels,
windmills). By default a class is written when it has at least --min-per-class (50)
pictures, which gives the first six; --classes names classes explicitly.

Each picture is flattened onto a white background (transparency), converted to RGB,
shrunk so that its longer side is at most --size pixels (128; the aspect ratio is kept,
smaller pictures are not enlarged) and written as PNG (or JPEG with --format jpeg).
Inputs are read in sorted order, pictures whose 16x16 grey thumbnails are identical are
kept once, and --per-class caps a class with a sample drawn with --seed, so the same
arguments always write the same files.
"""

from __future__ import annotations

import argparse
import io
import random
import shutil
import struct
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

TUXPAINT = Path("/usr/share/tuxpaint/stamps")
GCOMPRIS = Path("/usr/share/gcompris-qt/rcc")
QABCS = Path("/usr/share/qabcs/abcs/all/pics")
DLIB_JOHNS = Path("/usr/share/doc/libdlib19.1/examples/johns")
XEMACS = Path("/usr/share/xemacs-21.4.24/etc/photos")
ACT = "/gcompris/src/activities"

PACKAGES = {
    TUXPAINT: "tuxpaint-stamps-default",
    GCOMPRIS: "gcompris-qt-data",
    QABCS: "qabcs-data",
    DLIB_JOHNS: "libdlib19.1",
    XEMACS: "xemacs21-support",
}

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")

# tuxpaint animals that are drawings, paintings or a toy (checked by eye).
TUX_EXCLUDE = frozenset({
    "animals/fish/bluegroper.png", "animals/fish/butterflyfish.png",
    "animals/fish/clownfish.png", "animals/fish/coraltrout.png",
    "animals/fish/dolphinfish.png", "animals/fish/moonwrasse.png",
    "animals/fish/shrimp.png", "animals/fish/stripedfish.png",
    "animals/mammals/aquatic/orca.png", "animals/mammals/aquatic/whale.png",
    "animals/mammals/bears/toys/edward_bear.png", "animals/mammals/echidna.png",
    "animals/mammals/hedgehog.png",
    "food/pizza.png",
})

QABCS_FOOD = (
    "beet_salad blackberry casserole cauliflower_au_gratin clove corn curry_sausage date "
    "donut eclair fennel garlic gelatin ginger gooseberry halva kidney_beans kiwi lavash "
    "lazanki meat nectarine oil olivier otak-otak peanut pineapple plum roast shadberry "
    "sherry sorrel sprats stewed_duck stuffed_stomach udon uglifruit uszka wasabi "
    "whole_grain_bread whopper yakult yupka"
).split()

QABCS_INSTRUMENTS = (
    "accordion aeoline bagpipes bass_drum cello changu clarinet cuica cymbals drums "
    "dulzaina electric_guitar erhu flute gamba grand_piano guitar hang harmonica iotshin "
    "ipu natural_horn ney oboe oedephon organ piano pipe pishik quena rabel recorder rozhok "
    "slit_drum squeezebox timpani ukulele washint western_concert_flute yobel youhikko "
    "yueqin zhaleyka zither zurna"
).split()

XEMACS_FACES = (
    "adrian ajc baw ben bw cthomp dkindred dmoore fabrice golubev hniksic jan jens jmiller "
    "juhp jwz kazz kyle larsi martin mcook ograf piper rickc sperber stigb thiessel "
    "vladimir wmperry youngs"
).split()


@dataclass(frozen=True)
class Tux:
    """PNG photo stamps of one tuxpaint category (see the module docstring's rule)."""

    category: str
    include: tuple[str, ...] = ()  # stamp paths relative to the stamps folder; () = all

    tag = "tuxpaint"

    def items(self):
        root = TUXPAINT / self.category
        for path in sorted(root.rglob("*.png")):
            rel = path.relative_to(TUXPAINT).as_posix()
            if "cartoon" in path.relative_to(root).parts[:-1] or "_mirror" in path.stem:
                continue
            if path.with_suffix(".svg").exists() or rel in TUX_EXCLUDE:
                continue
            if self.include and rel not in self.include:
                continue
            yield rel.replace("/", "_"), path.read_bytes()


@dataclass(frozen=True)
class Folder:
    """Pictures of a plain folder (recursively), optionally only the named stems."""

    root: Path
    tag: str
    include: tuple[str, ...] = ()

    def items(self):
        for path in sorted(self.root.rglob("*")):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            if self.include and path.stem not in self.include:
                continue
            yield path.relative_to(self.root).as_posix().replace("/", "_"), path.read_bytes()


@dataclass(frozen=True)
class Rcc:
    """Pictures under one folder of a gcompris-qt resource bundle."""

    activity: str
    folder: str  # path inside the bundle, relative to /gcompris/src/activities/<activity>/
    include: tuple[str, ...] = ()

    tag = "gcompris"

    def items(self):
        prefix = f"{ACT}/{self.activity}/{self.folder.strip('/')}/"
        for name, data in sorted(read_rcc(GCOMPRIS / f"{self.activity}.rcc")):
            if not name.startswith(prefix) or not name.lower().endswith(IMAGE_SUFFIXES):
                continue
            stem = Path(name).stem
            if self.include and stem not in self.include:
                continue
            rel = name[len(f"{ACT}/"):]
            yield rel.replace("/resource", "").replace("/", "_"), data


def read_rcc(path: Path) -> list[tuple[str, bytes]]:
    """(path, content) of every file in a Qt binary resource (.rcc) file, format 1-3."""
    blob = path.read_bytes()
    if blob[:4] != b"qres":
        raise ValueError(f"{path}: not a Qt resource file")
    version, tree, data, names = struct.unpack(">IIII", blob[4:20])
    node_size = 22 if version >= 2 else 14

    def name_at(offset: int) -> str:
        at = names + offset
        (length,) = struct.unpack(">H", blob[at:at + 2])
        return blob[at + 6:at + 6 + 2 * length].decode("utf-16-be")

    out: list[tuple[str, bytes]] = []

    def walk(index: int, prefix: str) -> None:
        at = tree + index * node_size
        name_offset, flags = struct.unpack(">IH", blob[at:at + 6])
        here = f"{prefix}/{name_at(name_offset)}" if index else ""
        if flags & 2:  # directory
            count, first = struct.unpack(">II", blob[at + 6:at + 14])
            for child in range(first, first + count):
                walk(child, here)
            return
        (offset,) = struct.unpack(">I", blob[at + 10:at + 14])
        start = data + offset
        (size,) = struct.unpack(">I", blob[start:start + 4])
        raw = blob[start + 4:start + 4 + size]
        if flags & 1:  # zlib, after a 4-byte uncompressed length (qCompress)
            raw = zlib.decompress(raw[4:])
        elif flags & 4:
            raise ValueError(f"{path}: zstd-compressed entries are not supported")
        out.append((here, raw))

    walk(0, "")
    return out


TUX_TOOLS = tuple(f"household/{p}.png" for p in (
    "arttools/scissors_small_closed", "arttools/scissors_small_open", "tools/hammer",
    "tools/mallet_metal", "tools/measuring_tape", "tools/paintbrush_large", "tools/plyers",
    "tools/saw", "tools/spade", "tools/wrench", "tools/wrench_adjustable",
    "tools/wrench_plumbers",
))

CLASSES = {
    "animals": [
        Tux("animals"),
        Rcc("erase", "resource"),
        Rcc("explore_world_animals", "resource/animals"),
        Rcc("explore_farm_animals", "resource/animals"),
        Rcc("categorization", "resource/images/fishes"),
    ],
    "food": [
        Tux("food"),
        Tux("seasonal", tuple(f"seasonal/christmas/{n}.png" for n in (
            "Christmas_pudding", "Mince_Pie", "Roast_turkey"))),
        Folder(QABCS / "food", "qabcs", tuple(QABCS_FOOD)),
    ],
    "faces": [
        Folder(DLIB_JOHNS, "dlib"),
        Folder(XEMACS, "xemacs", tuple(XEMACS_FACES)),
    ],
    "landmarks": [
        Rcc("categorization", "resource/images/monuments"),
        Rcc("explore_monuments", "resource"),
    ],
    "instruments": [
        Tux("hobbies", tuple(f"hobbies/music/{p}.png" for p in (
            "brass/trumpet", "percussion/cymbal_crash", "percussion/drum_tomtom_floor",
            "percussion/drumkit", "string/cello", "string/guitar2",
            "string/guitar_classical", "string/guitar_electric",
            "string/guitar_electric_bass", "string/violin", "wind/bassoon"))),
        Folder(QABCS / "instrument", "qabcs", tuple(QABCS_INSTRUMENTS)),
        Rcc("explore_world_music", "resource/music", ("africa", "america", "middleeast")),
    ],
    "tools": [
        Rcc("categorization", "resource/images/tools"),
        Tux("household", TUX_TOOLS),
    ],
    "plants": [Tux("plants")],
    "energy": [Rcc("categorization", "resource/images/renewable")],
}


def to_rgb(data: bytes, size: int) -> Image.Image:
    """Decode, flatten transparency onto white, convert to RGB, fit in size x size."""
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        rgba = img.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    rgb = Image.alpha_composite(white, rgba).convert("RGB")
    if max(rgb.size) > size:
        scale = size / max(rgb.size)
        new = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        rgb = rgb.resize(new, Image.Resampling.LANCZOS)
    return rgb


def fingerprint(img: Image.Image) -> bytes:
    """16x16 grey thumbnail: equal for the same picture stored twice."""
    return img.convert("L").resize((16, 16), Image.Resampling.BOX).tobytes()


@dataclass
class Collected:
    pictures: dict[str, list[tuple[str, Image.Image]]] = field(default_factory=dict)
    duplicates: int = 0


def collect(classes: list[str], size: int) -> Collected:
    got = Collected()
    for cls in classes:
        seen: set[bytes] = set()
        stems: set[str] = set()
        kept: list[tuple[str, Image.Image]] = []
        for source in CLASSES[cls]:
            for name, data in source.items():
                img = to_rgb(data, size)
                key = fingerprint(img)
                if key in seen:
                    got.duplicates += 1
                    continue
                seen.add(key)
                stem = f"{source.tag}_{Path(name).stem}"
                if stem in stems:
                    raise ValueError(f"{cls}: two pictures named {stem}")
                stems.add(stem)
                kept.append((stem, img))
        got.pictures[cls] = kept
    return got


def missing_packages() -> list[str]:
    return sorted({pkg for path, pkg in PACKAGES.items() if not path.is_dir()})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write OUT/<class>/")
    parser.add_argument("--classes", nargs="+", choices=sorted(CLASSES),
                        help="classes to write (default: all with >= --min-per-class)")
    parser.add_argument("--per-class", type=int, default=None,
                        help="at most this many pictures a class (a --seed sample)")
    parser.add_argument("--min-per-class", type=int, default=50,
                        help="leave out classes with fewer pictures (default 50)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the --per-class sample")
    parser.add_argument("--size", type=int, default=128, help="longest side in pixels")
    parser.add_argument("--format", choices=("png", "jpeg"), default="png")
    parser.add_argument("--force", action="store_true", help="replace a non-empty --out")
    args = parser.parse_args(argv)

    missing = missing_packages()
    if missing:
        print("missing Debian packages: apt-get install -y --no-install-recommends "
              + " ".join(missing), file=sys.stderr)
        return 2
    out: Path = args.out
    if out.exists() and any(out.iterdir()):
        if not args.force:
            print(f"{out} is not empty; pass --force to replace it", file=sys.stderr)
            return 2
        shutil.rmtree(out)

    names = args.classes or list(CLASSES)
    got = collect(names, args.size)
    chosen = {}
    for cls in names:
        pics = got.pictures[cls]
        if len(pics) < args.min_per_class:
            print(f"skipping {cls}: {len(pics)} < --min-per-class {args.min_per_class}")
            continue
        if args.per_class is not None and len(pics) > args.per_class:
            pics = random.Random(f"{args.seed}:{cls}").sample(pics, args.per_class)
            pics.sort(key=lambda pic: pic[0])
        chosen[cls] = pics
    if not chosen:
        print("no class left to write", file=sys.stderr)
        return 1

    suffix = ".png" if args.format == "png" else ".jpg"
    for cls, pics in chosen.items():
        folder = out / cls
        folder.mkdir(parents=True, exist_ok=True)
        for stem, img in pics:
            if args.format == "png":
                img.save(folder / f"{stem}{suffix}", optimize=True)
            else:
                img.save(folder / f"{stem}{suffix}", quality=95)
    total = sum(len(p) for p in chosen.values())
    print(f"wrote {total} photographs in {len(chosen)} classes to {out} "
          f"({got.duplicates} duplicate pictures dropped)")
    for cls, pics in chosen.items():
        print(f"  {cls:12s} {len(pics)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
