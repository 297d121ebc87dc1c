"""Shared argparse pieces for the sub-commands: profile, run folder, overrides, and what a command reads.

Every command that has a run folder gets it from :func:`run_dir_from_args` (``--run-dir``, else
``runs/<profile>``), resolved once per command; every writing command declares its inputs and
outputs in a :class:`~sapkit.io.output_paths.OutputPlan` (its ``outputs(args)``), which the command
line checks before anything is written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sapkit.config import PROFILES, Config, load_config, parse_overrides
from sapkit.io.output_paths import OutputPlan
from sapkit.io.run_paths import default_run_dir

__all__ = ["add_profile_arguments", "config_from_args", "run_dir_from_args", "declare_profile"]


def add_profile_arguments(parser: argparse.ArgumentParser, *, default_profile: str = "smoke") -> None:
    """Add ``--profile``, ``--run-dir`` and repeatable ``-p key=value``."""
    parser.add_argument("--profile", default=default_profile, help="smoke | demo | paper | path to a YAML profile")
    parser.add_argument("--run-dir", default=None, help="run folder (default runs/<profile>)")
    parser.add_argument("-p", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. -p lesion.epochs=2 (repeatable)")


def config_from_args(args: argparse.Namespace) -> Config:
    """Resolve the profile with the ``-p`` overrides."""
    return load_config(args.profile, parse_overrides(args.overrides))


def run_dir_from_args(args: argparse.Namespace) -> Path:
    """The command's run folder: ``--run-dir``, else ``runs/<profile>`` (:func:`~sapkit.io.run_paths.default_run_dir`).

    The one place a command's default run folder is decided: the default is stored in
    ``args.run_dir``, so every later use within the command sees the same folder.
    """
    if getattr(args, "run_dir", None) is None:
        args.run_dir = str(default_run_dir(args.profile))
    return Path(args.run_dir)


def declare_notebooks(plan: OutputPlan, run_dir: str | Path | None = None, flag: str = "--run-dir") -> None:
    """The kit's notebook series is an input of every command that executes it: no output goes inside.

    With ``run_dir``, the executed copies ``<run_dir>/notebooks/<name>.ipynb`` are declared as its
    outputs too, so a run folder at the repository root (whose copies would be the series) is refused.
    """
    from sapkit.io.run_paths import RunDir
    from sapkit.pipeline.reproduce import NOTEBOOKS, RAW_NOTEBOOK, notebooks_dir

    plan.reads_folder(notebooks_dir(), "notebook series", whole=True)
    if run_dir is not None:
        for name in (RAW_NOTEBOOK, *NOTEBOOKS):
            plan.writes(RunDir(run_dir).notebook(name), flag, folder=run_dir)


def declare_profile(plan: OutputPlan, args: argparse.Namespace) -> None:
    """A profile given as a YAML file is an input of the command."""
    profile = getattr(args, "profile", None)
    if profile and str(profile) not in PROFILES:
        plan.reads(profile, f"the profile {profile}")
