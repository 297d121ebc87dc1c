"""The ``sapkit`` console script: a thin shell over the functions the notebooks call.

Each sub-command lives in ``sapkit/cli/<name>.py`` and exposes ``add_arguments(parser)`` and
``run(args) -> int``. Commands are imported lazily so ``sapkit --version`` stays instant.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from pathlib import Path

__all__ = ["main"]

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "check": ("sapkit.cli.check", "validate a data manifest and print a per-scan summary"),
    "fingerprint": ("sapkit.cli.fingerprint", "write the dataset fingerprint (spacing, shapes, intensities) as JSON"),
    "prepare": ("sapkit.cli.prepare", "reorient/resample a manifest's scans onto the T1 grid into a new folder"),
    "preprocess": ("sapkit.cli.preprocess", "raw stations (DICOM folder or stations CSV) → N4, standardisation, "
                                            "stitching, DWI→T1 → a manifest"),
    "split": ("sapkit.cli.split", "write splits.json (patient k-fold stratified by lesion count)"),
    "synth": ("sapkit.cli.synth", "generate the synthetic healthy and patient cohorts"),
    "train": ("sapkit.cli.train", "train the skeleton, SSL or lesion model"),
    "predict": ("sapkit.cli.predict", "whole-body sliding-window inference on a manifest"),
    "evaluate": ("sapkit.cli.evaluate", "lesion-wise evaluation of one case or a cohort"),
    "export": ("sapkit.cli.export", "write a lesion model as a MONAI bundle (runs with python -m monai.bundle run)"),
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


def _write_target(name: str, args: argparse.Namespace) -> tuple[Path, str] | None:
    """The folder a command writes into (locked while it runs) and how the user named it; None if none."""
    if name == "evaluate" and args.gt:
        return None  # one case writes only its --json file (atomically)
    from sapkit.io.run_paths import RunDir, default_run_dir

    def run_dir() -> Path:
        if getattr(args, "run_dir", None):
            return Path(args.run_dir)
        from sapkit.cli._common import config_from_args

        return default_run_dir(config_from_args(args).profile)

    if name == "train":
        if args.print_slurm or int(os.environ.get("RANK", "0")) != 0:
            return None  # prints only / a DDP rank other than 0 never writes
        return run_dir(), "--run-dir"
    if name == "split":
        return run_dir(), "--run-dir"
    if name == "reproduce":
        return (Path(args.run_dir) if args.run_dir else default_run_dir(args.profile)), "--run-dir"
    if name == "synth":
        return (Path(args.out), "--out") if args.out else (RunDir(run_dir()).data, "--run-dir")
    if name == "prepare":  # refuse an --out over the inputs before the lock file is made there
        from sapkit.data.prepare import check_out_dir

        check_out_dir(args.manifest, args.out)
    if name in ("predict", "prepare", "export"):
        return Path(args.out), "--out"
    if name == "evaluate":
        if args.manifest:
            return (Path(args.out), "--out") if args.out else (RunDir(args.pred_dir).root / "eval", "--pred-dir")
        return run_dir(), "--run-dir"
    return None


def _check_output_files(args: argparse.Namespace) -> None:
    from sapkit.io.atomic import check_output_file

    for attr, flag in (("json_path", "--json"), ("json_out", "--json")):
        if getattr(args, attr, None):
            check_output_file(getattr(args, attr), what=flag)


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
            _check_output_files(args)
            target = _write_target(name, args)
            if target is not None:
                from sapkit.io.run_lock import RunLock

                stack.enter_context(RunLock(target[0], f"sapkit {' '.join(argv)}", what=target[1]))
            return int(module.run(args) or 0)
    except SapkitError as exc:
        print(f"sapkit {name}: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a file system refusal the checks above could not foresee
        where = f" {exc.filename}" if exc.filename else ""
        print(f"sapkit {name}: error: cannot access{where}: {exc.strerror or exc}; "
              "check the path and its permissions", file=sys.stderr)
        return 1
