"""Command line: sort new image files into the clusters of a trained model.

    python -m flows.predict IMAGES... [--model artifacts/selflabel/model.pt]
        [--output predictions.parquet|.csv] [--batch-size 256] [--device auto|cpu|cuda]
        [--skip-bad]

(installed as ``scan-predict``). IMAGES are files and/or folders; folders are searched
recursively in sorted order. No Prefect flow runs here: it is a plain script.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_MODEL = Path("artifacts/selflabel/model.pt")
OUTPUT_FORMATS = (".parquet", ".csv")


class UsageError(ValueError):
    """Bad command-line input; the message is printed as one ``error:`` line, exit code 2."""


@dataclass
class Collected:
    """The image files to predict, the ones refused before decoding (name, reason), and
    warning lines about what the folder searches left out or followed."""

    paths: list[Path] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def collect_images(arguments: Sequence[str]) -> Collected:
    """Files as given and every image file below each folder (searched as ``prepare``
    searches ``data.root``), without repeats; names that are not valid UTF-8 are refused."""
    from scan_core.data.image_file import is_storable_name, printable_name
    from scan_core.data.image_search import find_images
    from scan_core.data.readers.folder import no_images_message

    collected = Collected()
    found: list[Path] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            search = find_images(path)
            if not search.paths:
                raise UsageError(" ".join([no_images_message(path, "folder "), *search.warnings()]))
            inside, refused = search.storable()
            found += inside
            collected.refused += [(printable_name(str(path / name)), why) for name, why in refused]
            collected.warnings += search.warnings()
        elif path.is_file() or path.is_symlink():  # a link loop is listed as unreadable, as prepare lists it
            if is_storable_name(argument):
                found.append(path)
            else:
                collected.refused.append((printable_name(argument), "file name is not valid UTF-8; rename it"))
        else:
            raise UsageError(f"no such file or folder: {printable_name(argument)}")
    seen: set[str] = set()
    for path in found:
        key = os.path.realpath(path)  # unlike Path.resolve, never raises on a link loop
        if key not in seen:
            seen.add(key)
            collected.paths.append(path)
    return collected


def probability_columns(num_clusters: int) -> list[str]:
    """``prob_00``, ``prob_01``... (zero-padded to at least two digits so they sort)."""
    width = max(2, len(str(num_clusters - 1)))
    return [f"prob_{cluster:0{width}d}" for cluster in range(num_clusters)]


def wide_table(table: pd.DataFrame) -> pd.DataFrame:
    """The predictions table with ``probs`` spread over one column per cluster (for CSV)."""
    probabilities = np.stack(table["probs"].to_numpy()) if len(table) else np.zeros((0, 0), np.float32)
    spread = pd.DataFrame(probabilities, columns=probability_columns(probabilities.shape[1]), index=table.index)
    return pd.concat([table.drop(columns="probs"), spread], axis=1)


def write_table(table: pd.DataFrame, output: Path) -> None:
    """Parquet keeps ``probs`` as a list column; CSV gets one ``prob_NN`` column per cluster."""
    from scan_core.checkpoint import atomic_path

    with atomic_path(output) as temporary:
        if output.suffix.lower() == ".csv":
            wide_table(table).to_csv(temporary, index=False)
        else:
            table.to_parquet(temporary, index=False)


def check_output(output: Path) -> None:
    if output.suffix.lower() not in OUTPUT_FORMATS:
        raise UsageError(f"--output {output}: the name must end in {' or '.join(OUTPUT_FORMATS)}")
    if output.is_dir():
        raise UsageError(f"--output {output} is a folder; give a file name ending in .parquet or .csv")


def check_device(name: str):
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``, as a torch device that exists here."""
    import torch

    from scan_core.devices import resolve_device

    try:
        device = resolve_device(name)
    except RuntimeError:
        raise UsageError(f"--device {name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name}: no CUDA GPU is visible here; use --device cpu (or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"--device {name}: only {torch.cuda.device_count()} CUDA GPU(s) are visible")
    elif device.type != "cpu":
        raise UsageError(f"--device {name!r} is not supported; use auto, cpu, cuda or cuda:N")
    return device


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scan-predict",
        description="Predict the cluster of new image files with a trained SCAN model.",
    )
    parser.add_argument("images", nargs="+", metavar="IMAGES",
                        help="image files and/or folders (searched recursively, in sorted order)")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL,
                        help=f"trained model file (default: {DEFAULT_MODEL}; the scan stage's "
                             f"artifacts/scan/model.pt works too)")
    parser.add_argument("--output", type=Path, default=Path("predictions.parquet"),
                        help="where to write the table: .parquet (probs as a list column) or .csv "
                             "(one prob_NN column per cluster); default: predictions.parquet")
    parser.add_argument("--batch-size", type=int, default=256, help="images per forward pass (default: 256)")
    parser.add_argument("--device", default="auto",
                        help="auto (the GPU when there is one), cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--skip-bad", action="store_true",
                        help="leave out files that cannot be read (listed on stderr) instead of failing")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from scan_core.predict_files import ModelFileError, UnreadableFilesError, load_trained_model, predict_files

    try:
        if args.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
        check_output(args.output)
        if not args.model.is_file():
            raise UsageError(f"model file {args.model} not found; run `dvc repro` first (or pass --model)")
        device = check_device(args.device)
        collected = collect_images(args.images)
        total = len(collected.paths) + len(collected.refused)
        if collected.refused and (not args.skip_bad or not collected.paths):
            raise UnreadableFilesError(collected.refused, total, "")
        for line in collected.warnings:
            print(f"warning: {line}", file=sys.stderr)
        trained = load_trained_model(args.model)
        result = predict_files(collected.paths, trained, batch_size=args.batch_size, device=device,
                               skip_bad=args.skip_bad)
    except UnreadableFilesError as error:
        hint = "" if args.skip_bad else " (fix or remove them, or pass --skip-bad to leave them out)"
        print(f"error: {len(error.failures)} of {error.total} file(s) could not be read as images{hint}:",
              file=sys.stderr)
        for source, reason in error.failures:
            print(f"  {source}: {reason}", file=sys.stderr)
        return 2
    except (UsageError, ModelFileError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    write_table(result.table, args.output)
    for line in result.warnings:
        print(f"warning: {line}", file=sys.stderr)
    skipped = collected.refused + result.skipped
    if skipped:
        print(f"skipped {len(skipped)} unreadable file(s):", file=sys.stderr)
        for source, reason in skipped:
            print(f"  {source}: {reason}", file=sys.stderr)
    used = result.table["cluster"].nunique()
    skipped_text = f", {len(skipped)} skipped" if skipped else ""
    print(f"{len(result.table)} images{skipped_text}; {used} of {trained.num_clusters} clusters used; "
          f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
