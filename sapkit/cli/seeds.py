"""``sapkit seeds``: the seed study — which results hold across training seeds and cohorts.

``sapkit seeds --profile demo`` runs (or reuses) the base run ``runs/demo``, repeats its
fine-tuning and evaluation (notebooks 04–05) with the training seeds 1–4 on the same cohort, splits
and pretrained models, and the whole series on the synthetic cohorts of seeds 1 and 2; then it
aggregates every run into ``runs/seed_study`` (``seed_study.md``, CSV tables, ``report.html``).
``--aggregate`` only rebuilds the tables from the runs that finished. Finished notebooks are never
rerun, so an interrupted study continues where it stopped. ``sapkit readme --seed-study
runs/seed_study`` puts the tables into the README.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sapkit.cli._cluster import add_cluster_arguments, resources_from_args
from sapkit.cli._common import (add_profile_arguments, config_from_args, declare_notebooks, declare_profile, parse_overrides,
                                run_dir_from_args)
from sapkit.io.output_paths import OutputPlan

__all__ = ["add_arguments", "outputs", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_profile_arguments(parser, default_profile="demo")
    parser.add_argument("--out", default="runs/seed_study", help="study folder (default runs/seed_study)")
    parser.add_argument("--training-seeds", type=int, nargs="*", default=[1, 2, 3, 4], metavar="S",
                        help="training seeds besides the base run's (default 1 2 3 4: five with the base run's)")
    parser.add_argument("--cohort-seeds", type=int, nargs="*", default=[1, 2], metavar="C",
                        help="synthetic-cohort seeds besides the base run's (default 1 2: three with it); "
                             "none: --cohort-seeds with no value")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel processes")
    parser.add_argument("--kernel", default=None, help="Jupyter kernel (default: 'sapkit' when registered)")
    parser.add_argument("--aggregate", action="store_true", help="only rebuild the tables from the runs that finished")
    add_cluster_arguments(parser, array=True)


def outputs(args: argparse.Namespace) -> OutputPlan:
    """Reads the profile; writes the base run (``--run-dir``, when it has not finished) and the study folder ``--out``."""
    plan = OutputPlan("sapkit seeds")
    declare_profile(plan, args)
    plan.writes_folder(run_dir_from_args(args), "--run-dir (the base run)")
    plan.writes_folder(Path(args.out), "--out")
    declare_notebooks(plan, run_dir_from_args(args), "--run-dir (the base run)")  # never over the series
    return plan


def run(args: argparse.Namespace) -> int:
    from sapkit.jobs.executors import Resources
    from sapkit.pipeline.seed_study import run_seed_study, summarize_seed_study

    config = config_from_args(args)
    base = run_dir_from_args(args)
    if args.aggregate:
        studies = summarize_seed_study(args.out, base=base, training_seeds=args.training_seeds,
                                       cohort_seeds=args.cohort_seeds)
    else:
        resources = resources_from_args(args, Resources()) if args.executor else None
        studies = run_seed_study(config.profile if args.profile in ("smoke", "demo", "paper") else args.profile,
                                 args.out, base=base, training_seeds=args.training_seeds,
                                 cohort_seeds=args.cohort_seeds, overrides=parse_overrides(args.overrides),
                                 jobs=args.jobs, executor=args.executor, resources=resources, resume=args.resume,
                                 kernel=args.kernel)
    print((Path(args.out) / "seed_study.md").read_text())
    print(f"wrote {args.out}/seed_study.md, report.html and the tables of {', '.join(studies)} seeds")
    return 0
