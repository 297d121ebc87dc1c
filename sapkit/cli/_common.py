"""Shared argparse pieces for the sub-commands (profile, run dir, overrides)."""

from __future__ import annotations

import argparse

from sapkit.config import Config, load_config, parse_overrides

__all__ = ["add_profile_arguments", "config_from_args"]


def add_profile_arguments(parser: argparse.ArgumentParser, *, default_profile: str = "smoke") -> None:
    """Add ``--profile``, ``--run-dir`` and repeatable ``-p key=value``."""
    parser.add_argument("--profile", default=default_profile, help="smoke | demo | paper | path to a YAML profile")
    parser.add_argument("--run-dir", default=None, help="run folder (default runs/<profile>)")
    parser.add_argument("-p", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. -p lesion.epochs=2 (repeatable)")


def config_from_args(args: argparse.Namespace) -> Config:
    """Resolve the profile with the ``-p`` overrides."""
    return load_config(args.profile, parse_overrides(args.overrides))
