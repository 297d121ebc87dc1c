"""``sapkit readme --run-dir runs/demo [--readme README.md]``: regenerate the README's results block."""

from __future__ import annotations

import argparse

from sapkit.io.output_paths import OutputPlan

__all__ = ["add_arguments", "outputs", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-dir", default="runs/demo", help="finished run folder (default runs/demo)")
    parser.add_argument("--readme", default="README.md", help="README to update in place")


def outputs(args: argparse.Namespace) -> OutputPlan:
    """Reads the run folder (tables, configuration, timings); rewrites the ``--readme`` file in place, outside it."""
    plan = OutputPlan("sapkit readme")
    plan.reads_folder(args.run_dir, "run folder", whole=True)
    plan.writes(args.readme, "--readme")
    return plan


def run(args: argparse.Namespace) -> int:
    from sapkit.pipeline.readme_block import update_readme

    print(f"updated {update_readme(args.readme, args.run_dir)} from {args.run_dir}")
    return 0
