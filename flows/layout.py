"""Command line: one folder per cluster, to browse what each cluster holds.

    python -m flows.layout [--predictions artifacts/selflabel/predictions.parquet]
        [--root <data.root from params.yaml>] [--output clusters] [--mode link|copy]
        [--min-confidence 0.0] [--force]

Images that are files (folder and ImageNet data sets, or a table written by
``scan-predict``) are linked (default) or copied into ``cluster_NN/``, keeping their names
(prefixed with their index where two would clash). Images of array data sets (digits,
CIFAR...: sources like ``digits:all:12``) are written as PNG from the prepare stage's
``images.npy``. ``index.csv`` lists source, cluster, confidence and the laid-out file.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_PREDICTIONS = Path("artifacts/selflabel/predictions.parquet")
DEFAULT_IMAGES = Path("artifacts/prepare/images.npy")
ARRAY_SOURCE = re.compile(r"^[A-Za-z0-9_\-]+:[A-Za-z0-9_+|\-]+:\d+$")
INDEX_FILE = "index.csv"
MODES = ("link", "copy")


class LayoutError(ValueError):
    """Bad input to the layout; printed as one ``error:`` line, exit code 2."""


def read_predictions(path: Path) -> tuple[pd.DataFrame, int]:
    """The predictions table (.parquet or a scan-predict .csv) and its number of clusters
    (0 when the table has no probabilities to count them by)."""
    if not path.is_file():
        raise LayoutError(f"predictions file {path} not found; run `dvc repro` first (or pass --predictions)")
    table = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    missing = [column for column in ("index", "source", "cluster", "confidence") if column not in table]
    if missing:
        raise LayoutError(f"{path} has no column(s) {', '.join(missing)}; expected a predictions table")
    if "probs" in table and len(table):
        num_clusters = len(table["probs"].iloc[0])
    else:
        num_clusters = len([column for column in table.columns if str(column).startswith("prob_")])
    return table, num_clusters


def check_rows(table: pd.DataFrame, num_clusters: int, name: str = "the predictions") -> None:
    """Every row's index, source, cluster and confidence usable, before anything is written.
    ``num_clusters`` 0 (a table without probabilities) means clusters are only checked to be
    whole numbers from 0; only the clusters present then get folders."""
    def whole(column: str) -> pd.Series:
        values = pd.to_numeric(table[column], errors="coerce")
        return values.notna() & (values == values.round())

    cluster = pd.to_numeric(table["cluster"], errors="coerce")
    confidence = pd.to_numeric(table["confidence"], errors="coerce")
    problems = [
        (~whole("index") | (pd.to_numeric(table["index"], errors="coerce") < 0), "index must be a whole number >= 0"),
        (table["source"].isna() | (table["source"].astype(str).str.len() == 0), "source is empty"),
        (~whole("cluster") | (cluster < 0) | ((cluster >= num_clusters) if num_clusters else False),
         f"cluster must be a whole number from 0 to {num_clusters - 1}" if num_clusters
         else "cluster must be a whole number >= 0"),
        (confidence.isna() | (confidence < 0) | (confidence > 1), "confidence must be between 0 and 1"),
    ]
    for bad, rule in problems:
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            values = ", ".join(f"{column} {table[column].iat[row]}" for column in ("index", "source", "cluster", "confidence"))
            raise LayoutError(f"{name}: row {row} ({values}) is not a prediction: {rule} "
                              f"({int(bad.sum())} row(s) like it); nothing was written")


def cluster_folder(cluster: int, num_clusters: int) -> str:
    """``cluster_00``, ``cluster_01``... (at least two digits, so folders sort by number)."""
    return f"cluster_{cluster:0{max(2, len(str(max(num_clusters - 1, 0))))}d}"


def is_array_source(source: str) -> bool:
    return bool(ARRAY_SOURCE.match(source))


def default_root(params_file: Path) -> Path:
    from scan_core.config import ParamsError, load_params

    try:
        return Path(load_params(params_file).data.root)
    except ParamsError as error:
        raise LayoutError(f"{error} (or pass --root)") from None


def check_output(output: Path, force: bool) -> None:
    """Refuse an output that is a file, or a non-empty folder unless ``force``."""
    if output.exists() and not output.is_dir():
        raise LayoutError(f"--output {output} exists and is not a folder")
    if output.is_dir() and any(output.iterdir()) and not force:
        raise LayoutError(f"--output {output} is not empty; pass --force to replace its layout "
                          f"(cluster_* folders and {INDEX_FILE}) or choose another folder")


def clear_layout(output: Path) -> None:
    """Remove what an earlier layout wrote (cluster_* folders, index.csv); links' targets stay."""
    if not output.is_dir():
        return
    for entry in output.iterdir():
        if entry.name.startswith("cluster_") or entry.name == INDEX_FILE:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()


def unique_names(table: pd.DataFrame, names: list[str], folders: list[str]) -> list[str]:
    """File names within each cluster folder, prefixed ``<index>_`` where two would clash.

    Clashes are judged case-insensitively, as on macOS and Windows file systems.
    """
    keys = [(folder, name.lower()) for folder, name in zip(folders, names)]
    counts: dict[tuple[str, str], int] = {}
    for key in keys:
        counts[key] = counts.get(key, 0) + 1
    taken = {key for key in keys if counts[key] == 1}
    result = []
    for index, folder, name, key in zip(table["index"].tolist(), folders, names, keys):
        if counts[key] == 1:
            result.append(name)
            continue
        candidate, prefix = f"{index}_{name}", f"{index}_"
        while (folder, candidate.lower()) in taken:
            prefix += "_"
            candidate = f"{prefix}{name}"
        taken.add((folder, candidate.lower()))
        result.append(candidate)
    return result


def write_png(image: np.ndarray, target: Path) -> None:
    from PIL import Image

    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(target)


def lay_out(
    table: pd.DataFrame, num_clusters: int, output: Path, root: Path | None, images_file: Path,
    mode: str = "link", min_confidence: float = 0.0, force: bool = False, progress: bool | None = None,
) -> pd.DataFrame:
    """Fill ``output`` with one folder per cluster; return the index (source, cluster, confidence, file).

    Everything is checked (output folder, source files, images.npy) before anything is
    written or, with ``force``, removed.
    """
    from tqdm import tqdm

    check_output(output, force)
    check_rows(table, num_clusters)
    if mode not in MODES:
        raise LayoutError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    chosen = table[table["confidence"] >= min_confidence].reset_index(drop=True)
    sources = chosen["source"].astype(str).tolist()
    array_rows = [is_array_source(source) for source in sources]
    arrays = bool(sources) and all(array_rows)
    if any(array_rows) and not arrays:
        raise LayoutError("the predictions mix array sources (like digits:all:12) and file paths")

    images = None
    if arrays:
        if not images_file.is_file():
            raise LayoutError(f"{images_file} not found: the images of an array data set come from the "
                              f"prepare stage; run `dvc repro prepare` first")
        images = np.load(images_file, mmap_mode="r")
        rows = chosen["index"].to_numpy()
        if len(rows) and (rows.min() < 0 or rows.max() >= len(images)):
            raise LayoutError(f"{images_file} holds {len(images)} images but the predictions refer to "
                              f"index {rows.max()}: it is from another data set; rerun `dvc repro`")
        names = [source.replace(":", "_") + ".png" for source in sources]
        originals: list[Path] = []
    else:
        base = root if root is not None else Path(".")
        originals = [base / source for source in sources]
        missing = [source for source, path in zip(sources, originals) if not path.is_file()]
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise LayoutError(f"{len(missing)} image(s) of the predictions are not under --root {base}: "
                              f"{shown}; pass the folder the sources are relative to as --root "
                              f"(`--root .` for a table written by scan-predict)")
        names = [path.name for path in originals]

    clusters = chosen["cluster"].astype(int).tolist()
    folders = [cluster_folder(cluster, num_clusters) for cluster in clusters]
    names = unique_names(chosen, names, folders)
    clear_layout(output)
    output.mkdir(parents=True, exist_ok=True)
    for folder in sorted(set(folders) | {cluster_folder(cluster, num_clusters) for cluster in range(num_clusters)}):
        (output / folder).mkdir(exist_ok=True)

    files = []
    disable = None if progress is None else not progress
    for row in tqdm(range(len(chosen)), desc="laying out", unit="img", disable=disable):
        relative = f"{folders[row]}/{names[row]}"
        target = output / relative
        if images is not None:
            write_png(np.asarray(images[int(chosen["index"].iat[row])]), target)
        elif mode == "link":
            try:
                os.symlink(originals[row].resolve(), target)
            except OSError as error:  # e.g. Windows without the symlink privilege
                raise LayoutError(f"cannot create a symbolic link in {output} ({error}); "
                                  f"use --mode copy") from None
        else:
            shutil.copy2(originals[row], target)
        files.append(relative)

    index = pd.DataFrame({"source": sources, "cluster": clusters,
                          "confidence": chosen["confidence"].to_numpy(), "file": files})
    from scan_core.checkpoint import atomic_path

    with atomic_path(output / INDEX_FILE) as temporary:
        index.to_csv(temporary, index=False)
    return index


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m flows.layout",
        description="Lay out one folder per cluster (links or copies of the images) to browse the clusters.",
    )
    parser.add_argument("--predictions", type=Path, default=DEFAULT_PREDICTIONS,
                        help=f"predictions table, .parquet or scan-predict's .csv (default: {DEFAULT_PREDICTIONS})")
    parser.add_argument("--root", type=Path, default=None,
                        help="folder the sources are relative to (default: data.root from --params)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"),
                        help="params file to read data.root from (default: params.yaml)")
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES,
                        help=f"images of array data sets (default: {DEFAULT_IMAGES})")
    parser.add_argument("--output", type=Path, default=Path("clusters"), help="output folder (default: clusters)")
    parser.add_argument("--mode", choices=MODES, default="link",
                        help="link: symbolic links to the images (default); copy: copies")
    parser.add_argument("--min-confidence", type=float, default=0.0,
                        help="leave out images predicted with a lower confidence (default: 0.0)")
    parser.add_argument("--force", action="store_true",
                        help="replace the cluster_* folders and index.csv of a non-empty --output")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if not 0.0 <= args.min_confidence <= 1.0:
            raise LayoutError(f"--min-confidence must be between 0 and 1, got {args.min_confidence}")
        table, num_clusters = read_predictions(args.predictions)
        if table.empty:
            raise LayoutError(f"{args.predictions} holds no predictions")
        files_needed = not all(is_array_source(str(source)) for source in table["source"])
        root = args.root
        if root is None and files_needed:
            root = default_root(args.params)
        check_output(args.output, args.force)
        index = lay_out(table, num_clusters, args.output, root, args.images, args.mode, args.min_confidence,
                        args.force)
    except LayoutError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    left_out = len(table) - len(index)
    below = f" ({left_out} below --min-confidence {args.min_confidence} left out)" if left_out else ""
    how = "PNG files" if all(is_array_source(str(s)) for s in table["source"]) else (
        "links" if args.mode == "link" else "copies")
    folders = max(num_clusters, index["cluster"].nunique())
    print(f"laid out {len(index)} images{below} in {folders} cluster folders under {args.output} "
          f"as {how}; index: {args.output / INDEX_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
