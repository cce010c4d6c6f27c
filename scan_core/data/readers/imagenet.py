"""Read ImageNet (or an ImageNet-50/100/200 subset) from torchvision's extracted layout.

The SCAN paper clusters subsets of ImageNet given as lists of WordNet ids; reading the
class folders named in such a list lets the same benchmark be run without copying
images around. Decoding is shared with the folder reader.
"""

from __future__ import annotations

from pathlib import Path

from scan_core.data.image_set import ImageSet
from scan_core.data.image_search import find_images
from scan_core.data.readers.folder import FileListing, check_on_bad_image, decode_listing

IMAGENET_SPLITS = ("train", "val")


def read_imagenet(
    root: Path,
    split: str,
    image_size: int,
    subset_file: Path | None = None,
    *,
    on_bad_image: str = "fail",
) -> ImageSet:
    """Read ``<root>/<split>/<wnid>/*`` for every wnid in the subset (all when None).

    Labels index the sorted list of wnids, and class names are the wnids, so the same
    subset file always gives the same labels.
    """
    check_on_bad_image(on_bad_image)
    return decode_listing(list_imagenet(root, split, subset_file), image_size, on_bad_image)


def list_imagenet(root: Path, split: str, subset_file: Path | None = None) -> FileListing:
    """The files of ``<root>/<split>/<wnid>/*`` for every wnid in the subset (all when None),
    labelled by the wnid's position in the sorted list."""
    root = Path(root)
    if split not in IMAGENET_SPLITS:
        raise ValueError(f"unknown ImageNet split {split!r}; valid: {', '.join(IMAGENET_SPLITS)}")
    split_dir = root / split
    if not split_dir.is_dir():
        raise FileNotFoundError(
            f"expected ImageNet {split} images in {split_dir}/<wnid>/*.JPEG. ImageNet cannot "
            "be downloaded automatically: get ILSVRC2012 from image-net.org and extract it "
            "as torchvision.datasets.ImageNet does (train/ and val/ with one folder per wnid)."
        )
    if subset_file is None:
        wnids = sorted(
            p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
        )
    else:
        wnids = read_subset_file(Path(subset_file))
    missing = [wnid for wnid in wnids if not (split_dir / wnid).is_dir()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} class folder(s) from the subset are missing in {split_dir}: "
            f"{', '.join(missing)}"
        )
    paths: list[Path] = []
    labels: list[int] = []
    refused: list[tuple[str, str]] = []
    warnings: list[str] = []
    for label, wnid in enumerate(wnids):
        search = find_images(split_dir / wnid)
        if not search.paths:
            raise FileNotFoundError(f"class folder {split_dir / wnid} holds no images")
        found, unstorable = search.storable()
        paths += found
        labels += [label] * len(found)
        refused += [(f"{split}/{wnid}/{name}", why) for name, why in unstorable]
        warnings += search.warnings()
    if not paths and not refused:
        raise FileNotFoundError(f"no class folders found in {split_dir}")
    return FileListing(root=root, paths=paths, labels=labels, class_names=list(wnids), split=split,
                       refused=refused, warnings=warnings)


def read_subset_file(path: Path) -> list[str]:
    """Sorted unique wnids from a subset file: first token per line, ``#`` comments ignored."""
    if not path.is_file():
        raise FileNotFoundError(f"ImageNet subset file {path} does not exist")
    wnids: set[str] = set()
    for line in path.read_text().splitlines():
        text = line.split("#", 1)[0].strip()
        if text:
            wnids.add(text.split()[0])
    if not wnids:
        raise ValueError(f"ImageNet subset file {path} lists no WordNet ids")
    return sorted(wnids)
