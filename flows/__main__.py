"""Command line: ``python -m flows <stage>`` (what dvc.yaml runs), ``python -m flows pipeline``."""

from __future__ import annotations

import argparse
import os
import sys

from flows import PARENT_RUN_ENV
from scan_core.config import ParamsError, load_params
from tasks.stages import STAGES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flows",
        description="Run SCAN pipeline stages as Prefect flows (dvc.yaml calls one stage at a time).",
    )
    parser.add_argument("target", choices=[*STAGES, "pipeline"],
                        help="a stage name, or 'pipeline' for all stages in one flow")
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    args = parser.parse_args(argv)

    from tasks.common import USER_ERRORS

    try:
        params = load_params(args.params)  # fail fast, before a Prefect server is started
        from flows.pipeline import check_ready, scan_pipeline, scan_stage
        from flows.quiet_errors import quiet_bad_input
        from scan_core.data.sources import check_data_root

        if args.target in ("prepare", "pipeline"):
            check_data_root(params.data.name, params.data.root)
        if args.target != "pipeline":
            check_ready(args.target, params)
        with quiet_bad_input():
            if args.target == "pipeline":
                states = scan_pipeline(params_file=args.params)
                print(" ".join(f"{stage}={state}" for stage, state in states.items()))
            elif parent := os.environ.get(PARENT_RUN_ENV):
                from flows.experiment import run_stage_in_experiment

                print(f"{args.target}: {run_stage_in_experiment(parent, args.target, args.params)}")
            else:
                print(f"{args.target}: {scan_stage(stage=args.target, params_file=args.params)}")
    except (ParamsError, *USER_ERRORS) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
