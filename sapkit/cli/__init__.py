"""The ``sapkit`` console script: a thin shell over the functions the notebooks call.

Each sub-command lives in ``sapkit/cli/<name>.py`` and exposes ``add_arguments(parser)``,
``outputs(args)`` and ``run(args) -> int``. ``outputs`` returns the command's
:class:`~sapkit.io.output_paths.OutputPlan` (what it reads, where it writes; None when it writes
nothing): it is checked before anything is written (no output onto an input, none leaving its
folder), its folder is locked, and it stays active while ``run`` writes. Commands are imported
lazily so ``sapkit --version`` stays instant.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sapkit.io.output_paths import OutputPlan

__all__ = ["main"]

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "check": ("sapkit.cli.check", "validate a data manifest and print a per-scan summary"),
    "fingerprint": ("sapkit.cli.fingerprint", "write the dataset fingerprint (spacing, shapes, intensities) as JSON"),
    "prepare": ("sapkit.cli.prepare", "reorient/resample a manifest's scans onto the T1 grid into a new folder"),
    "preprocess": ("sapkit.cli.preprocess", "raw stations (DICOM folder or stations CSV) → N4, standardisation, "
                                            "stitching, DWI→T1 → a manifest"),
    "propagate": ("sapkit.cli.propagate", "skeleton labels for a subject's repeat scans from its one labelled scan"),
    "split": ("sapkit.cli.split", "write splits.json (patient k-fold stratified by lesion count)"),
    "synth": ("sapkit.cli.synth", "generate the synthetic healthy and patient cohorts"),
    "train": ("sapkit.cli.train", "train the skeleton, SSL or lesion model"),
    "predict": ("sapkit.cli.predict", "whole-body sliding-window inference on a manifest"),
    "evaluate": ("sapkit.cli.evaluate", "lesion-wise evaluation of one case or a cohort"),
    "export": ("sapkit.cli.export", "write a lesion model as a MONAI bundle (runs with python -m monai.bundle run)"),
    "reproduce": ("sapkit.cli.reproduce", "run the notebook series 00-05 headless with papermill"),
    "sweep": ("sapkit.cli.sweep", "run the series once per parameter set of a grid and aggregate"),
    "seeds": ("sapkit.cli.seeds", "seed study: rerun with other training and cohort seeds, aggregate what holds"),
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


def _check_output_files(plan: OutputPlan) -> None:
    """Output files outside any output folder (``--json``, ``--readme``): writable, not a folder."""
    from sapkit.io.atomic import check_output_file

    for given, flag in plan.single_files():
        check_output_file(given, what=flag)


def _one_line_warnings(command: str) -> None:
    """Print the kit's own warnings as ``sapkit <command>: warning: …`` (no source line); others as usual."""
    import warnings

    from sapkit.errors import SapkitWarning

    default = warnings.formatwarning

    def formatwarning(message, category, filename, lineno, line=None):  # type: ignore[no-untyped-def]
        if issubclass(category, SapkitWarning):
            return f"sapkit {command}: warning: {message}\n"
        return default(message, category, filename, lineno, line)

    warnings.formatwarning = formatwarning


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    from sapkit.errors import SapkitError

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _build_parser()
    if not argv or argv[0] not in COMMANDS:
        parser.parse_args(argv or ["--help"])
        return 2
    name = argv[0]
    _one_line_warnings(name)
    module = importlib.import_module(COMMANDS[name][0])
    cmd_parser = argparse.ArgumentParser(prog=f"sapkit {name}", description=COMMANDS[name][1])
    module.add_arguments(cmd_parser)
    args = cmd_parser.parse_args(argv[1:])
    try:
        with contextlib.ExitStack() as stack:
            plan = module.outputs(args)  # declares inputs and outputs; resolves the run folder once
            if plan is not None:
                plan.check()  # before anything is written: no output onto an input, none leaving its folder
                _check_output_files(plan)
                if plan.lock is not None:
                    from sapkit.io.run_lock import RunLock

                    stack.enter_context(RunLock(plan.lock[0], f"sapkit {' '.join(argv)}", what=plan.lock[1]))
                stack.enter_context(plan.active())
            return int(module.run(args) or 0)
    except SapkitError as exc:
        print(f"sapkit {name}: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a file system refusal the checks above could not foresee
        where = f" {exc.filename}" if exc.filename else ""
        print(f"sapkit {name}: error: cannot access{where}: {exc.strerror or exc}; "
              "check the path and its permissions", file=sys.stderr)
        return 1
