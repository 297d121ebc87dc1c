"""``sapkit reproduce --profile smoke|demo|paper [--run-dir D] [-p key=value ...] [--force]``."""

from __future__ import annotations

import argparse

from sapkit.cli._common import add_profile_arguments, declare_notebooks, declare_profile, run_dir_from_args
from sapkit.config import parse_overrides
from sapkit.io.output_paths import OutputPlan
from sapkit.io.run_paths import RunDir

__all__ = ["add_arguments", "outputs", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_profile_arguments(parser, default_profile="demo")
    parser.add_argument("--force", action="store_true", help="re-run notebooks whose outputs are complete")
    parser.add_argument("--notebooks", nargs="+", default=None, metavar="NAME",
                        help="run only these notebooks (e.g. 04_lesion_finetuning 05_lesion_analysis)")
    parser.add_argument("--kernel", default=None, help="Jupyter kernel (default: 'sapkit' when registered)")


def outputs(args: argparse.Namespace) -> OutputPlan:
    """Reads the profile; writes the run folder (locked by :func:`sapkit.pipeline.reproduce.reproduce` itself)."""
    plan = OutputPlan("sapkit reproduce")
    declare_profile(plan, args)
    rd = RunDir(run_dir_from_args(args))
    plan.writes_folder(rd.path, "--run-dir")
    declare_notebooks(plan, rd.path)  # --run-dir . would write the executed notebooks over the series itself
    for path in (rd.config_yaml, rd.versions_json, rd.report_html):
        plan.writes(path, "--run-dir", folder=rd.path)
    return plan


def run(args: argparse.Namespace) -> int:
    from sapkit.pipeline.reproduce import reproduce

    run_dir = run_dir_from_args(args)
    results = reproduce(args.profile, run_dir, parse_overrides(args.overrides), notebooks=args.notebooks,
                        force=args.force, kernel=args.kernel,
                        on_result=lambda r: print(f"  {r.name}: {r.status} ({r.seconds / 60:.1f} min)", flush=True))
    total = sum(r.seconds for r in results)
    print(f"series finished in {total / 60:.1f} min; report: {RunDir(run_dir.resolve()).report_html}")
    return 0
