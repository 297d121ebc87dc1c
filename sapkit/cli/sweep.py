"""``sapkit sweep GRID.yaml [--jobs N] [--force]``: run the series per parameter set and aggregate."""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("grid", help="grid YAML (profile, base_dir, grid, fixed, notebooks, reuse)")
    parser.add_argument("--jobs", type=int, default=1, help="parameter sets run in parallel processes")
    parser.add_argument("--force", action="store_true", help="re-run notebooks whose outputs are complete")
    parser.add_argument("--kernel", default=None, help="Jupyter kernel (default: 'sapkit' when registered)")


def run(args: argparse.Namespace) -> int:
    from sapkit.pipeline.sweep import load_grid, sweep

    summary = sweep(args.grid, jobs=args.jobs, force=args.force, kernel=args.kernel)
    print(summary.to_string(index=False))
    print(f"wrote {load_grid(args.grid).base_dir / 'sweep_summary.csv'} and label_efficiency.html")
    return 0
