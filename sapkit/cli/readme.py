"""``sapkit readme --run-dir runs/demo [--readme README.md]``: regenerate the README's results block."""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-dir", default="runs/demo", help="finished run folder (default runs/demo)")
    parser.add_argument("--readme", default="README.md", help="README to update in place")


def run(args: argparse.Namespace) -> int:
    from sapkit.pipeline.readme_block import update_readme

    print(f"updated {update_readme(args.readme, args.run_dir)} from {args.run_dir}")
    return 0
