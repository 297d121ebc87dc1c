"""Shared pieces of the output-safety tests (issue 23; ``sapkit.io.output_paths``): a tree of inputs for
every command, the case registry, and the one check every case passes.

Not a test module. A case is ``fn(world, tmp) -> (argv, reason)``: ``world`` is the shared (read-only)
tree of inputs, ``tmp`` a fresh folder for what one case builds; the call must exit non-zero with
exactly one ``sapkit <command>: error:`` line matching ``reason``, print no traceback, and leave the
whole tree — inputs and every other path, the working folder included — exactly as it was.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from sapkit.cli import main
from sapkit.data.manifest import write_manifest
from sapkit.io.nifti import read_image, save_nifti

from conftest import write_tiny_cohort

SMOKE = Path(__file__).resolve().parents[3] / "sapkit" / "profiles" / "smoke.yaml"
EVIL_ID = "../../x"
#: Why a manifest with the scan id ``../../x`` is refused.
EVIL = r"scan_id '\.\./\.\./x' holds a path part"


def registry():
    """A fresh ``(CASES, case)``: ``@case("command …")`` registers ``fn(world, tmp)`` under that name."""
    cases: dict = {}

    def case(name: str):
        def register(fn):
            cases[name] = fn
            return fn
        return register

    return cases, case


def at(world: Path, rel: str) -> str:
    return str(world / rel)


# ---------------------------------------------------------------- one shared tree of inputs
@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """The shared tree of inputs (never written; imported by each test module)."""
    return build_world(tmp_path_factory.mktemp("world"))


def build_world(root: Path) -> Path:
    """Inputs of every command: a cohort, a profile, checkpoints, a run folder, predictions, a grid, stations."""
    write_tiny_cohort(root / "data")
    shutil.copy(SMOKE, root / "profile.yaml")
    (root / "model.pt").write_bytes(b"lesion checkpoint (never read: the refusal comes first)")
    (root / "skeleton.pt").write_bytes(b"skeleton checkpoint")
    run = root / "run"
    write_tiny_cohort(run / "data", n_healthy=1, n_patients=2)
    shutil.copy(SMOKE, run / "config.yaml")
    (run / "splits.json").write_text("{}")
    for folder in ("lesion/sap/fold_0", "skeleton", "predictions/sap", "eval"):
        (run / folder).mkdir(parents=True)
    (run / "lesion/sap/fold_0/model_final.pt").write_bytes(b"lesion model")
    (run / "lesion/sap/fold_0/MODEL_CARD.md").write_text("# card\n")
    (run / "skeleton/model_final.pt").write_bytes(b"skeleton model")
    (run / "eval/table1.md").write_text("| metric |\n")
    pred = root / "pred"
    pred.mkdir()
    rows = []
    for sid in ("p02", "p03", "p04", "p05"):
        mask, affine, _ = read_image(root / "data" / f"{sid}_lesion.nii.gz")
        rows.append({"scan_id": f"{sid}_s0", "prob_path": str(save_nifti(
            mask.astype(np.float32) * 0.9, affine, pred / f"{sid}_s0_prob.nii.gz", dtype=np.float32))})
    for sid in ("p03", "p04"):
        shutil.copy(pred / f"{sid}_s0_prob.nii.gz", run / "predictions/sap" / f"{sid}_s0_prob.nii.gz")
    pd.DataFrame(rows).to_csv(pred / "predictions.csv", index=False)
    evil_copy(root / "data", root / "evil")
    raw = root / "raw"
    raw.mkdir()
    (raw / "st1.nii.gz").write_bytes((root / "data" / "h00_t1.nii.gz").read_bytes())
    pd.DataFrame([{"subject_id": "h00", "sequence": "t1", "b_value": "", "station": "1", "path": "st1.nii.gz"}]) \
        .to_csv(raw / "stations.csv", index=False)
    pd.DataFrame([{"scan_id": EVIL_ID, "subject_id": "h00", "sequence": "t1", "b_value": "", "station": "1",
                   "path": "st1.nii.gz"}]).to_csv(raw / "evil_stations.csv", index=False)
    (raw / "rules.yaml").write_text("{}\n")
    (raw / "labels.csv").write_text("scan_id,skeleton_label\n")
    grid(root / "grid.yaml", base_dir="sweep", reuse="run")
    return root


def evil_copy(data: Path, to: Path) -> Path:
    """A copy of a cohort whose patient p02 has the scan id ``../../x``."""
    shutil.copytree(data, to)
    table = pd.read_csv(to / "manifest.csv", dtype=str, keep_default_na=False)
    table.loc[table["scan_id"] == "p02_s0", "scan_id"] = EVIL_ID
    table.to_csv(to / "manifest.csv", index=False)
    return to / "manifest.yaml"


def grid(path: Path, **keys: str) -> Path:
    path.write_text(yaml.safe_dump({"profile": "smoke", "grid": {"seed": [1]}, **keys}))
    return path


def copy_run(world: Path, tmp: Path) -> Path:
    shutil.copytree(world / "run", tmp / "run", symlinks=True)
    return tmp / "run"


def prob_name_cohort(world: Path, tmp: Path) -> tuple[Path, Path]:
    """A manifest whose T1 of p02_s0 lives in ``D/p02_s0_prob.nii.gz`` (the name predict gives its output)."""
    table = pd.read_csv(world / "data" / "manifest.csv", dtype=str, keep_default_na=False)
    (tmp / "D").mkdir()
    for col in ("t1", "b1000", "skeleton_label", "lesion_label"):
        for i, name in table[col].items():
            if name:
                shutil.copy(world / "data" / name, tmp / name)
    shutil.move(tmp / "p02_t1.nii.gz", tmp / "D" / "p02_s0_prob.nii.gz")
    table.loc[table["scan_id"] == "p02_s0", "t1"] = "D/p02_s0_prob.nii.gz"
    return write_manifest(tmp / "m", table, name="prob-named", description="x", data_root=".."), tmp / "D"


def named_like_prepare_outputs(world: Path, tmp: Path) -> tuple[Path, Path]:
    """A manifest whose images sit in ``images/`` under the names ``sapkit prepare`` gives its outputs."""
    table = pd.read_csv(world / "data" / "manifest.csv", dtype=str, keep_default_na=False)
    (tmp / "images").mkdir()
    for i, row in table.iterrows():
        for col in ("t1", "b1000", "skeleton_label", "lesion_label"):
            if row[col]:
                new = f"images/{row['scan_id']}_{col}.nii.gz"
                shutil.copy(world / "data" / row[col], tmp / new)
                table.loc[i, col] = new
    return write_manifest(tmp, table, name="named", description="x"), tmp / "images"



def predict_argv(world: Path, out: str | Path, manifest: str | Path | None = None, *extra: str) -> list[str]:
    return ["predict", "--checkpoint", at(world, "model.pt"), "--manifest", str(manifest or world / "data"), "--out",
            str(out), *extra]


def export_argv(world: Path, out: str | Path, *extra: str) -> list[str]:
    return ["export", at(world, "run"), "--init", "sap", "--fold", "0", "--out", str(out), *extra]


def _tree(root: Path) -> dict[str, str]:
    """Every path below ``root`` → its kind and content digest (links by target, folders by name)."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                out[rel] = "link " + os.readlink(path)
            elif path.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out



def check_refused(make_case, world: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """Run one case through ``sapkit`` and check the refusal (see the module docstring)."""
    work = tmp_path / "case"
    work.mkdir()
    argv, reason = make_case(world, work)
    monkeypatch.chdir(tmp_path)  # a default run folder (runs/...) would appear here
    before = (_tree(world), _tree(tmp_path))
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    assert code != 0, out
    assert "Traceback" not in err
    assert err.startswith(f"sapkit {argv[0]}: error: "), err
    assert len(re.findall(r"^sapkit \w+: error: ", err, flags=re.M)) == 1, err
    assert re.search(reason, err), err
    assert (_tree(world), _tree(tmp_path)) == before  # inputs byte-identical, nothing written anywhere
