"""``sapkit readme --run-dir runs/demo [--readme README.md]``: regenerate the README's results block."""

from __future__ import annotations

import argparse

from sapkit.io.output_paths import OutputPlan

__all__ = ["add_arguments", "outputs", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-dir", default="runs/demo", help="finished run folder (default runs/demo)")
    parser.add_argument("--readme", default="README.md", help="README to update in place")
    parser.add_argument("--seed-study", default=None,
                        help="a `sapkit seeds` folder: also replace the README's seeds block with its tables")


def outputs(args: argparse.Namespace) -> OutputPlan:
    """Reads the run folder (tables, configuration, timings); rewrites the ``--readme`` file in place, outside it."""
    plan = OutputPlan("sapkit readme")
    plan.reads_folder(args.run_dir, "run folder", whole=True)
    if args.seed_study:
        plan.reads_folder(args.seed_study, "seed study folder", whole=True)
    plan.writes(args.readme, "--readme")
    return plan


def run(args: argparse.Namespace) -> int:
    from sapkit.pipeline.readme_block import update_readme

    path = update_readme(args.readme, args.run_dir, seed_study=args.seed_study)
    print(f"updated {path} from {args.run_dir}" + (f" and {args.seed_study}" if args.seed_study else ""))
    return 0
