"""Shared parts of the malformed-input catalogue (``tests/cli/bad_inputs/test_bad_<command>.py``).

Each command's file registers its cases with :func:`registry` and runs them with the two checks
below; ``test_catalogue.py`` counts every file's cases.

* an API case is ``case(root) -> (callable, regex)``: ``root`` holds a valid tiny cohort
  (``root/data/manifest.yaml``) that the case may break before the call; the call must raise one
  :class:`SapkitError` matching ``regex`` and leave every file under ``root`` byte-identical;
* a CLI case is ``case(root) -> (argv, regex, outputs)``: ``sapkit argv`` must exit non-zero with
  one message ``sapkit <command>: error: ...`` matching ``regex`` and no traceback, leave the inputs
  byte-identical and create none of ``outputs``.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from sapkit.errors import SapkitError

from conftest import write_tiny_cohort

AFFINE = np.diag([2.0, 2.0, 3.0, 1.0])
SHAPE = (12, 10, 14)

# a YAML "billion laughs": nine levels of nine aliases each
YAML_BOMB = "\n".join(['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]'] + [
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]" for p, n in zip("abcdefgh", "bcdefghi")]) + "\n"


def registry():
    """``(CASES, CLI_CASES, case, cli_case)``: two lists and the decorators that fill them."""
    cases: list = []
    cli_cases: list = []

    def case(fn):
        cases.append(fn)
        return fn

    def cli_case(fn):
        cli_cases.append(fn)
        return fn

    return cases, cli_cases, case, cli_case


# ---------------------------------------------------------------- building broken inputs
def read_table(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "data" / "manifest.csv", dtype=str, keep_default_na=False)


def write_table(root: Path, table: pd.DataFrame) -> None:
    table.to_csv(root / "data" / "manifest.csv", index=False)


def edit_meta(root: Path, **changes) -> None:
    meta = yaml.safe_load((root / "data" / "manifest.yaml").read_text())
    meta.update(changes)
    (root / "data" / "manifest.yaml").write_text(yaml.safe_dump(meta))


def manifest_loader(root):
    from sapkit.data.manifest import load_manifest

    return lambda: load_manifest(root / "data")


def cli_call(name: str, argv: list[str]):
    """``sapkit <name> argv`` up to the command's ``run`` (which raises; ``main`` would print and exit 1)."""
    import argparse
    import importlib

    from sapkit.cli import COMMANDS

    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"sapkit {name}")
    module.add_arguments(parser)
    args = parser.parse_args(argv)
    return lambda: module.run(args)


def tiny_model(out_channels: int = 2, channels=(4, 8), backbone: str = "unet"):
    import dataclasses

    from sapkit.config import load_config
    from sapkit.networks.factory import build_model

    mc = dataclasses.replace(load_config("smoke").model, channels=tuple(channels), backbone=backbone)
    return build_model(mc, out_channels, seed=0), mc


def raw_nifti(path: Path, data=None, *, zooms=(2.0, 2.0, 3.0), sform=None, s_code=0) -> Path:
    """A NIfTI written header-first (nibabel fills in no codes or affine of its own)."""
    import nibabel as nib

    data = np.ones(SHAPE, np.float32) if data is None else data
    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(data.dtype)
    hdr.set_data_shape(data.shape)
    hdr.set_zooms(zooms)
    if sform is not None:
        hdr.set_sform(sform, code=s_code)
    nib.save(nib.Nifti1Image(data, None, hdr), str(path))
    return path


def zero_spacing_nifti(path: Path) -> Path:
    return raw_nifti(path, sform=np.diag([2.0, 0.0, 3.0, 1.0]), s_code=1)


def nan_affine_nifti(path: Path, value: float = np.nan) -> Path:
    bad = AFFINE.copy()
    bad[1, 3] = value
    return raw_nifti(path, sform=bad, s_code=1)


def read_only_folder(root: Path) -> Path:
    """A folder nobody may write into: mode 0555, or sysfs's /sys/kernel for root (who ignores modes)."""
    ro = root / "ro"
    ro.mkdir(exist_ok=True)
    ro.chmod(0o555)
    if not os.access(ro, os.W_OK):
        return ro
    ro.chmod(0o755)
    sysfs = Path("/sys/kernel")
    if not sysfs.is_dir():
        pytest.skip("running as root without sysfs: no folder here refuses writes")
    return sysfs


# ---------------------------------------------------------------- the two checks
def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _input_digests(root: Path) -> dict[str, str]:
    """Digests of every file except the run folders' lock files (made by the writer lock itself)."""
    return {k: v for k, v in _digests(root).items() if not Path(k).name.startswith(".sapkit.lock")}


def check_api_case(tmp_path: Path, make_case) -> None:
    """The call raises one SapkitError matching the case's message and changes no file."""
    write_tiny_cohort(tmp_path / "data")
    call, message = make_case(tmp_path)
    before = _digests(tmp_path)
    with pytest.raises(SapkitError, match=message):
        call()
    assert _digests(tmp_path) == before


def check_cli_case(tmp_path: Path, make_case, capsys) -> None:
    """``sapkit argv`` exits non-zero with one message, no traceback, no output, inputs unchanged."""
    from sapkit.cli import main

    write_tiny_cohort(tmp_path / "data")
    argv, message, outputs = make_case(tmp_path)
    before = _input_digests(tmp_path)
    capsys.readouterr()
    code = main(argv)  # an uncaught exception here is the traceback the user would see
    err = capsys.readouterr().err
    assert code != 0
    assert "Traceback" not in err
    assert err.startswith(f"sapkit {argv[0]}: error: ") and re.search(message, err), err
    assert _input_digests(tmp_path) == before
    assert [p for p in outputs if p.exists()] == []


def catalogue_tests(cases: list, cli_cases: list) -> tuple:
    """The two tests each ``test_bad_<command>.py`` runs over its registered cases, as (api, cli).

    Bind the ones the module has cases for at its end, e.g.
    ``test_bad_input_raises_clear_error_and_leaves_inputs_untouched, test_bad_input_on_the_command_line_exits_with_one_message = catalogue_tests(CASES, CLI_CASES)``.
    """
    @pytest.mark.parametrize("make_case", cases, ids=lambda f: f.__name__)
    def api(tmp_path, make_case):
        check_api_case(tmp_path, make_case)

    @pytest.mark.parametrize("make_case", cli_cases, ids=lambda f: f.__name__)
    def cli(tmp_path, make_case, capsys):
        check_cli_case(tmp_path, make_case, capsys)

    return api, cli
