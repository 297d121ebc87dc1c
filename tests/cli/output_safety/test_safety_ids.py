"""Ids that leave the folder, missing maps, and coverage of the output-safety cases (issue 23).

A manifest (or stations CSV) whose ``scan_id`` is ``../../x`` is refused by every command that reads
one, before anything is written; ``evaluate --manifest`` refuses maps that ``predictions.csv`` lists
but that are missing, or counts them with ``--allow-missing``; every writing command has cases.
"""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from sapkit.cli import COMMANDS, main

from output_safety_world import (  # world: the fixture
    EVIL, at, export_argv, predict_argv, check_refused, registry, world,
)

CASES, case = registry()


# ids that leave the folder (every command that reads a manifest or stations CSV)


@case("check: scan_id ../../x")
def _(w, t):
    return ["check", at(w, "evil")], EVIL


@case("predict: scan_id ../../x")
def _(w, t):
    return predict_argv(w, t / "out", w / "evil"), EVIL


@case("prepare: scan_id ../../x")
def _(w, t):
    return ["prepare", at(w, "evil"), "--out", str(t / "out")], EVIL


@case("propagate: scan_id ../../x")
def _(w, t):
    return ["propagate", at(w, "evil"), "--out", str(t / "out")], EVIL


@case("export --inputs: scan_id ../../x")
def _(w, t):
    return export_argv(w, t / "bundle", "--inputs", at(w, "evil")), EVIL


@case("train lesion --predict: scan_id ../../x")
def _(w, t):
    return ["train", "lesion", "--init", "scratch", "--predict", "--data", at(w, "evil"), "--run-dir",
            str(t / "run")], EVIL


@case("evaluate --manifest: scan_id ../../x")
def _(w, t):
    return ["evaluate", "--manifest", at(w, "evil"), "--pred-dir", at(w, "pred"), "--out", str(t / "out")], EVIL


@case("fingerprint: scan_id ../../x")
def _(w, t):
    return ["fingerprint", at(w, "evil"), "--json", str(t / "fp.json")], EVIL


@case("split: scan_id ../../x")
def _(w, t):
    return ["split", at(w, "evil"), "--run-dir", str(t / "run")], EVIL


@case("preprocess: scan_id ../../x in the stations CSV")
def _(w, t):
    return ["preprocess", at(w, "raw/evil_stations.csv"), "--out", str(t / "out")], EVIL


@pytest.mark.parametrize("name", list(CASES))
def test_an_id_that_leaves_the_folder_is_refused(name, world, tmp_path, monkeypatch, capsys):
    check_refused(CASES[name], world, tmp_path, monkeypatch, capsys)


def test_every_writing_command_has_cases():
    """Each command of the console script is pointed at its inputs (``check``, which writes nothing, at an evil id)."""
    import test_safety_analysis
    import test_safety_runs

    names = [*CASES, *test_safety_analysis.CASES, *test_safety_runs.CASES]
    covered = {name.split()[0].rstrip(":") for name in names}
    assert covered == set(COMMANDS), sorted(set(COMMANDS) ^ covered)


def test_missing_maps_are_counted_with_allow_missing(world, tmp_path, capsys):
    shutil.copytree(world / "pred", tmp_path / "pred")
    (tmp_path / "pred" / "p04_s0_prob.nii.gz").unlink()
    argv = ["evaluate", "--manifest", str(world / "data"), "--pred-dir", str(tmp_path / "pred"), "--out",
            str(tmp_path / "eval"), "--allow-missing", "--json", str(tmp_path / "summary.json")]
    assert main(argv) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    counts = summary["n_scans"], summary["n_missing"], summary["missing"], summary["n_patients"]
    assert counts == (3, 1, ["p04_s0"], 4)
    assert "1 scan(s) listed in predictions.csv had no probability map" in (tmp_path / "eval" / "table1.md").read_text()
    assert sorted(pd.read_csv(tmp_path / "eval" / "patients.csv")["scan_id"]) == ["p02_s0", "p03_s0", "p05_s0"]
