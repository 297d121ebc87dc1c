"""``sapkit sweep GRID.yaml [--jobs N | --executor local|slurm [--resume]] [--force] [--aggregate]``.

Runs the series per parameter set and aggregates. ``--executor`` makes every parameter set one
element of a submitit job array (SLURM, or submitit's local executor), with the resources as
options or the grid file's ``resources`` section; ``--aggregate`` only rebuilds the summary from
the sets that finished.
"""

from __future__ import annotations

import argparse

from sapkit.cli._cluster import add_cluster_arguments, resources_from_args
from sapkit.cli._common import declare_notebooks
from sapkit.io.output_paths import OutputPlan

__all__ = ["add_arguments", "outputs", "run"]

_GRID_FORMAT = """grid file format (YAML; example: examples/label_efficiency_grid.yaml):
  profile: smoke                    # smoke, demo or paper
  base_dir: runs/sweep              # one run folder per parameter set below it
  notebooks: [04_lesion_finetuning, 05_lesion_analysis]   # optional: part of the series
  reuse: runs/smoke                 # optional: data/, splits.json, skeleton/, ssl/ taken from here
  fixed: {lesion.epochs: 2}         # overrides shared by every set
  grid:                             # every combination is one run (here 2 x 2 = 4)
    seed: [1, 2]
    lesion.label_fraction: [0.5, 1.0]
  resources: {partition: gpu, gpus: 1, time_min: 240}   # optional, with --executor
Writes base_dir/sweep_summary.csv and label_efficiency.html (median F2 and Dice vs labelled fraction)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _GRID_FORMAT
    parser.add_argument("grid", help="grid YAML (profile, base_dir, grid, fixed, notebooks, reuse, resources)")
    parser.add_argument("--jobs", type=int, default=1, help="parameter sets run in parallel processes")
    parser.add_argument("--force", action="store_true", help="re-run notebooks whose outputs are complete")
    parser.add_argument("--kernel", default=None, help="Jupyter kernel (default: 'sapkit' when registered)")
    parser.add_argument("--aggregate", action="store_true",
                        help="only rebuild sweep_summary.csv from the parameter sets that finished")
    add_cluster_arguments(parser, array=True)


def outputs(args: argparse.Namespace) -> OutputPlan:
    """Reads the grid file, its profile and the ``reuse`` run; writes the grid's ``base_dir``."""
    from sapkit.config import PROFILES
    from sapkit.io.run_paths import RunDir
    from sapkit.pipeline.sweep import load_grid

    plan = OutputPlan("sapkit sweep")
    plan.reads(args.grid, "the grid file")
    grid = load_grid(args.grid)
    if grid.profile not in PROFILES:
        plan.reads(grid.profile, "the grid's profile")
    if grid.reuse is not None:
        rd = RunDir(grid.reuse)
        plan.reads_folder(rd.path, "reuse run folder")
        for folder in (rd.data, rd.skeleton.path, rd.ssl.path):
            plan.reads_folder(folder, "folder of the reuse run", whole=True)
        plan.reads(rd.splits_json, "the reuse run's folds")
        plan.reads(rd.fingerprint_json, "the reuse run's fingerprint")
    flag = f"base_dir of {args.grid}"
    plan.writes_folder(grid.base_dir, flag)
    declare_notebooks(plan)
    plan.writes_in(grid.base_dir, ["sweep_summary.csv", "label_efficiency.html"], flag)
    return plan


def run(args: argparse.Namespace) -> int:
    from sapkit.errors import ConfigError
    from sapkit.io.run_paths import RunDir
    from sapkit.io.folders import JobsDir
    from sapkit.jobs.executors import Resources
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
