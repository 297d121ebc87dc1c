"""``sapkit sweep GRID.yaml [--jobs N | --executor local|slurm [--resume]] [--force] [--aggregate]``.

Runs the series per parameter set and aggregates. ``--executor`` makes every parameter set one
element of a submitit job array (SLURM, or submitit's local executor), with the resources as
options or the grid file's ``resources`` section; ``--aggregate`` only rebuilds the summary from
the sets that finished.
"""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sapkit.pipeline.executors import add_resource_arguments

    parser.add_argument("grid", help="grid YAML (profile, base_dir, grid, fixed, notebooks, reuse, resources)")
    parser.add_argument("--jobs", type=int, default=1, help="parameter sets run in parallel processes")
    parser.add_argument("--force", action="store_true", help="re-run notebooks whose outputs are complete")
    parser.add_argument("--kernel", default=None, help="Jupyter kernel (default: 'sapkit' when registered)")
    parser.add_argument("--aggregate", action="store_true",
                        help="only rebuild sweep_summary.csv from the parameter sets that finished")
    add_resource_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from sapkit.errors import ConfigError
    from sapkit.io.run_paths import RunDir
    from sapkit.pipeline.executors import JobsDir, Resources, resources_from_args
    from sapkit.pipeline.sweep import load_grid, summarize_sweep, sweep

    if args.resume and args.executor is None:
        raise ConfigError("--resume needs --executor local|slurm (without it, finished notebooks are skipped anyway)")
    if args.aggregate:
        summary = summarize_sweep(args.grid)
    else:
        resources = resources_from_args(args, Resources.from_mapping(load_grid(args.grid).resources))
        summary = sweep(args.grid, jobs=args.jobs, force=args.force, kernel=args.kernel, executor=args.executor,
                        resources=resources, resume=args.resume, wait=args.wait)
        if summary.empty:
            states = JobsDir(RunDir(load_grid(args.grid).base_dir).jobs("sweep")).states_csv
            print(f"submitted; element states in {states} (`sapkit sweep {args.grid} --executor slurm --resume` "
                  f"resubmits failures); run `sapkit sweep {args.grid} --aggregate` when the jobs are done")
            return 0
    print(summary.to_string(index=False))
    print(f"wrote {load_grid(args.grid).base_dir / 'sweep_summary.csv'} and label_efficiency.html")
    return 0
