"""The ``scan`` command: cluster a folder of images in one step, and the tools around it.

    scan cluster IMAGES [--project DIR] [--clusters N|auto] [--backbone NAME] [--weights FILE] [-S key=value]...
    scan predict IMAGES... [--model ...]      (was scan-predict / python -m flows.predict)
    scan layout [--predictions ...]           (was python -m flows.layout)
    scan ui                                   (a Prefect server with its UI, as make ui)

``scan cluster`` makes DIR (default ``scan-<name of IMAGES>`` here) a git + DVC project for
the folder, runs the pipeline there as one DVC experiment under one Prefect server, lays
the clusters out in ``DIR/clusters/`` and prints the metrics and the report's path. Run
again on the same DIR with other options, it is another experiment there and only the
stages whose inputs changed run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from scan_core.config import ParamsError
from scan_core.names import WEIGHTS_DIR, is_foundation

METRICS = Path("metrics/evaluate.json")
REPORT = Path("reports/index.html")
CLUSTERS = Path("clusters")
FIXED_KEYS = frozenset({"data.name", "data.root"})
MODELS = (("kmeans", "k-means on the embeddings"), ("scan", "SCAN"), ("selflabel", "self-labeling"))


class UsageError(ValueError):
    """A bad argument to ``scan``: one ``error:`` line, exit code 2."""


def cluster_count(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--clusters takes a whole number >= 2 or auto, not {text!r}") from None
    if count < 2:
        raise argparse.ArgumentTypeError(f"--clusters takes a whole number >= 2 or auto, not {count}")
    return count


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scan", description="SCAN: sort unlabeled images into semantic clusters.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    cluster = commands.add_parser(
        "cluster", help="cluster a folder of images (makes or reuses a DVC project for it)",
        description="Cluster the images under IMAGES: make (or reuse) a git + DVC project for them, run the "
                    "pipeline there as a DVC experiment, lay the clusters out in DIR/clusters/.")
    cluster.add_argument("images", type=Path, metavar="IMAGES",
                         help="a folder of images (class subfolders, if any, are used only to score the result)")
    cluster.add_argument("--project", type=Path, default=None, metavar="DIR",
                         help="the project folder (default: scan-<name of IMAGES> in the current folder)")
    cluster.add_argument("--clusters", type=cluster_count, default=None, metavar="N|auto",
                         help="number of clusters, or auto to estimate it (default: scan.num_clusters of the params)")
    cluster.add_argument("--backbone", default=None, metavar="NAME",
                         help="pretext.backbone: small_cnn, resnet18, ..., or a frozen foundation model, "
                              "timm/<model> (e.g. timm/vit_small_patch14_dinov2.lvd142m) or open_clip/<arch>:<tag> "
                              "(e.g. open_clip/ViT-B-32:laion2b_s34b_b79k), weights from the Hugging Face cache")
    cluster.add_argument("--weights", type=Path, default=None, metavar="FILE",
                         help="pretrained backbone weights (a state dict, .pth or .safetensors): copied into "
                              "DIR/weights/, no pretext training (pretext.method pretrained)")
    cluster.add_argument("-S", "--set", dest="pairs", action="append", default=[], metavar="KEY=VALUE",
                         help="any params key, as dvc exp run -S (repeatable), e.g. -S scan.entropy_weight=2")
    commands.add_parser("predict", help="sort new images with a trained model (scan predict --help)", add_help=False)
    commands.add_parser("layout", help="one folder per cluster from a predictions table (scan layout --help)",
                        add_help=False)
    commands.add_parser("ui", help="start a local Prefect server with its web UI on http://127.0.0.1:4200")
    return parser


def cluster_options(args: argparse.Namespace) -> dict[str, Any]:
    """The params overrides the options of ``scan cluster`` stand for (``data.*`` apart)."""
    from flows.experiment import parse_overrides

    options: dict[str, Any] = {}
    if args.clusters is not None:
        options["scan.num_clusters"] = args.clusters
    if args.backbone is not None:
        options["pretext.backbone"] = args.backbone
    if args.weights is not None:
        if args.backbone is None:
            raise UsageError(f"--weights {args.weights} needs --backbone, the architecture the weights are for "
                             "(for example --backbone resnet18)")
        options["pretext.method"] = "pretrained"
        options["pretext.weights"] = f"{WEIGHTS_DIR}/{args.weights.name}"
    options.update(parse_overrides(args.pairs))
    if args.backbone is not None and is_foundation(args.backbone):
        options = foundation_options(args.backbone, options)
    if fixed := sorted(FIXED_KEYS & set(options)):
        raise UsageError(f"{', '.join(fixed)} are set by scan cluster from IMAGES; make another project "
                         "(--project) for other images")
    return options


def foundation_options(backbone: str, options: dict[str, Any]) -> dict[str, Any]:
    """A foundation backbone is used frozen with trained weights, on images stored at its own
    input side; its name is checked here."""
    from scan_core import foundation

    try:
        foundation.check_name(backbone)
        side = foundation.preprocessing(backbone).input_size
    except (ImportError, ValueError) as error:
        raise UsageError(str(error)) from None
    return {"pretext.method": "pretrained", "data.image_size": side, **options}


def check_weights(backbone: str | None, weights: Path | None) -> None:
    """The weights exist before anything is made: the file given, or a foundation model's in
    the Hugging Face cache or downloadable now (one line saying what to fetch where)."""
    if weights is not None:
        if not weights.is_file():
            raise UsageError(f"--weights {weights}: no such file")
        return
    if backbone is not None and is_foundation(backbone):
        from scan_core import foundation

        try:
            foundation.check_hub_weights(backbone)
        except (ValueError, FileNotFoundError) as error:
            raise UsageError(str(error)) from None


def check_images(images: Path) -> Path:
    if not images.exists():
        raise UsageError(f"{images} not found; give a folder of images")
    if not images.is_dir():
        raise UsageError(f"{images} is a file; give the folder that holds the images")
    return images.resolve()


def summary(project: Path) -> str:
    """What the run gave: scores (with labels), cluster sizes, where the clusters and the report are."""
    metrics = json.loads(METRICS.read_text()) if METRICS.exists() else {}
    lines = []
    scored = [(name, label) for name, label in MODELS if "acc" in metrics.get(name, {})]
    if scored:
        lines.append(f"{'':28s}   ACC    NMI    ARI   (against the class subfolders, {metrics.get('num_images')} images)")
        lines += [f"{label:28s} {metrics[name]['acc']:.3f}  {metrics[name]['nmi']:.3f}  {metrics[name]['ari']:.3f}"
                  for name, label in scored]
    else:
        lines.append("no class subfolders: nothing to score against (the report shows every cluster)")
    sizes = metrics.get("selflabel", {}).get("cluster_sizes") or metrics.get("scan", {}).get("cluster_sizes")
    if sizes:
        lines.append(f"cluster sizes: {', '.join(str(size) for size in sizes)}")
    lines.append(f"clusters: {project / CLUSTERS}/cluster_*/ (index.csv lists every image)")
    lines.append(f"report:   {project / REPORT}")
    lines.append(f"in {project}: dvc exp show, dvc metrics diff, dvc plots diff, scan ui")
    return "\n".join(lines)


def cluster(args: argparse.Namespace) -> int:
    from flows import layout
    from flows.project import ProjectError, create_project, is_project, project_root_of, refresh_project, tool_env
    from flows.experiment import override_text
    from flows.server import run_with_server

    images = check_images(args.images)
    options = cluster_options(args)
    check_weights(args.backbone, args.weights)
    project = (args.project or Path.cwd() / f"scan-{images.name}").resolve()
    if is_project(project):
        made_for = project_root_of(project)
        if made_for.resolve() != images:
            raise UsageError(f"{project} is the project of {made_for}, not of {images}; pass another --project")
        refresh_project(project)
        print(f"scan cluster: another experiment in {project}", flush=True)
    else:
        create_project(project, {"data.name": "folder", "data.root": str(images), **options})
        print(f"scan cluster: new project {project} for {images}", flush=True)
    if args.weights is not None:
        shutil.copy2(args.weights, project / WEIGHTS_DIR / args.weights.name)
    os.chdir(project)
    os.environ.update(tool_env())
    code = run_with_server([sys.executable, "-m", "flows.experiment", *(f"-S{override_text(key, value)}" for key, value in options.items())])
    if code != 0:
        print(f"error: the pipeline failed (exit code {code}); see the log above. Rerun the same command to "
              "resume: the stages that finished are skipped", file=sys.stderr)
        return code
    code = layout.main(["--output", str(CLUSTERS), "--force"])
    if code != 0:
        return code
    print(summary(project))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in {"predict", "layout"}:
        from flows import layout, predict

        tool = predict if argv[0] == "predict" else layout
        return tool.main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.command == "ui":
        os.execv(sys.executable, [sys.executable, "-m", "prefect", "server", "start"])
    from flows.project import ProjectError

    try:
        return cluster(args)
    except (UsageError, ParamsError, ProjectError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
