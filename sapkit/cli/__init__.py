"""The ``sapkit`` console script: a thin shell over the functions the notebooks call.

Each sub-command lives in ``sapkit/cli/<name>.py`` and exposes ``add_arguments(parser)`` and
``run(args) -> int``. Commands are imported lazily so ``sapkit --version`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["main"]

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "check": ("sapkit.cli.check", "validate a data manifest and print a per-scan summary"),
    "fingerprint": ("sapkit.cli.fingerprint", "write the dataset fingerprint (spacing, shapes, intensities) as JSON"),
    "prepare": ("sapkit.cli.prepare", "reorient/resample a manifest's scans onto the T1 grid into a new folder"),
    "split": ("sapkit.cli.split", "write splits.json (patient k-fold stratified by lesion count)"),
    "synth": ("sapkit.cli.synth", "generate the synthetic healthy and patient cohorts"),
    "train": ("sapkit.cli.train", "train the skeleton, SSL or lesion model"),
    "predict": ("sapkit.cli.predict", "whole-body sliding-window inference on a manifest"),
    "evaluate": ("sapkit.cli.evaluate", "lesion-wise evaluation of one case or a cohort"),
    "export": ("sapkit.cli.export", "write a lesion model as a MONAI bundle (monai.bundle run, MONAI Label)"),
    "reproduce": ("sapkit.cli.reproduce", "run the notebook series 00-05 headless with papermill"),
    "sweep": ("sapkit.cli.sweep", "run the series once per parameter set of a grid and aggregate"),
    "readme": ("sapkit.cli.readme", "regenerate the README's results table from a finished run"),
}


def _build_parser() -> argparse.ArgumentParser:
    from sapkit import __version__

    parser = argparse.ArgumentParser(
        prog="sapkit",
        description="Supervised Anatomical Pretraining for bone-metastasis segmentation in whole-body MRI.",
    )
    parser.add_argument("--version", action="version", version=f"sapkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    from sapkit.errors import SapkitError

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _build_parser()
    if not argv or argv[0] not in COMMANDS:
        parser.parse_args(argv or ["--help"])
        return 2
    name = argv[0]
    module = importlib.import_module(COMMANDS[name][0])
    cmd_parser = argparse.ArgumentParser(prog=f"sapkit {name}", description=COMMANDS[name][1])
    module.add_arguments(cmd_parser)
    args = cmd_parser.parse_args(argv[1:])
    try:
        return int(module.run(args) or 0)
    except SapkitError as exc:
        print(f"sapkit {name}: error: {exc}", file=sys.stderr)
        return 1


