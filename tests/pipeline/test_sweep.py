"""Sweep grid files, run names, reuse of a finished run, and aggregation over hand-made run folders."""

import json
from pathlib import Path

import pandas as pd
import pytest

from sapkit.errors import ConfigError, SapkitError
from sapkit.io.run_paths import RunDir
from sapkit.pipeline.sweep import (SweepGrid, _link_reused, aggregate_runs, expand_grid, label_efficiency_figure,
                                   load_grid, run_name)


def _grid_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "grids" / "grid.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _patients(run_dir: Path, frame: pd.DataFrame) -> Path:
    path = RunDir(run_dir).eval_table("patients")
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def test_load_grid_resolves_paths_against_the_grid_file(tmp_path):
    path = _grid_file(tmp_path, "profile: smoke\nbase_dir: ../sweep\nreuse: ../runs/smoke\n"
                                "notebooks: [04_lesion_finetuning, 05_lesion_analysis]\n"
                                "fixed: {lesion.epochs: 1}\ngrid:\n  seed: [1, 2]\n  lesion.label_fraction: [0.5, 1.0]\n")
    grid = load_grid(path)
    assert grid.profile == "smoke"
    assert grid.base_dir == (tmp_path / "sweep").resolve() and grid.reuse == (tmp_path / "runs" / "smoke").resolve()
    assert grid.notebooks == ("04_lesion_finetuning", "05_lesion_analysis")
    assert grid.grid == {"seed": [1, 2], "lesion.label_fraction": [0.5, 1.0]} and list(grid.grid) == ["seed", "lesion.label_fraction"]
    assert grid.fixed == {"lesion.epochs": 1}
    minimal = load_grid(_grid_file(tmp_path, "grid: {seed: [3]}\n"))
    assert (minimal.profile, minimal.reuse, minimal.notebooks, minimal.fixed) == ("smoke", None, None, {})
    assert minimal.base_dir == (tmp_path / "grids" / "runs" / "sweep").resolve()


@pytest.mark.parametrize("text, message", [
    ("grid: {seed: []}\n", "non-empty lists"),
    ("grid: {seed: 1}\n", "non-empty lists"),
    ("profile: smoke\n", "non-empty lists"),
    ("grid: {seed: [1]}\nextra: 2\n", r"unknown key\(s\) \['extra'\]"),
    ("- a\n- b\n", "must be a YAML mapping.*got a list"),
    ("grid: {seed: [1]\n", "is not valid YAML"),
    ("grid: {lesion.epochz: [1]}\n", "grid.yaml: unknown config key 'lesion.epochz'"),
])
def test_load_grid_rejects_bad_files_naming_the_file(tmp_path, text, message):
    path = _grid_file(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        load_grid(path)
    assert str(path) in str(info.value)


def test_missing_grid_file(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.yaml does not exist"):
        load_grid(tmp_path / "nope.yaml")


def test_expand_grid_is_the_cartesian_product_over_fixed():
    grid = SweepGrid("smoke", Path("runs"), {"seed": [1, 2, 3], "lesion.label_fraction": [0.25, 1.0]},
                     fixed={"lesion.epochs": 1, "seed": 0})
    combos = expand_grid(grid)
    assert len(combos) == 6 and all(c["lesion.epochs"] == 1 for c in combos)
    assert [(c["seed"], c["lesion.label_fraction"]) for c in combos] == [
        (1, 0.25), (1, 1.0), (2, 0.25), (2, 1.0), (3, 0.25), (3, 1.0)]  # first key varies slowest; grid beats fixed


def test_run_name_is_a_safe_folder_name():
    keys = ["seed", "lesion.label_fraction", "model.backbone"]
    assert run_name({"seed": 1, "lesion.label_fraction": 0.5, "model.backbone": "a/b c"}, keys) == \
        "seed=1__lesion.label_fraction=0.5__model.backbone=a-bc"
    assert run_name({"seed": 2, "lesion.epochs": 9}, ["seed"]) == "seed=2"  # only grid keys name the run


def test_aggregate_runs_medians_per_run_and_init(tmp_path):
    combos = expand_grid(SweepGrid("smoke", tmp_path, {"seed": [1, 2], "lesion.label_fraction": [0.5, 1.0]}))
    runs = {}
    for i, c in enumerate(combos):
        d = tmp_path / f"r{i}"
        _patients(d, pd.DataFrame({"init": ["sap", "sap", "scratch", "scratch"], "f2": [0.2, 0.4 + i, 0.1, 0.3],
                                   "dice": [0.5, 0.7, 0.2, 0.4]}))
        runs[f"r{i}"] = (c, d)
    summary = aggregate_runs(runs)
    assert len(summary) == 8 and set(summary["n_patients"]) == {2}
    row = summary[(summary.run == "r3") & (summary.init == "sap")].iloc[0]
    assert row["median_f2"] == pytest.approx((0.2 + 3.4) / 2) and row["median_dice"] == pytest.approx(0.6)
    assert row["lesion.label_fraction"] == 1.0 and row["seed"] == 2
    scratch = summary[(summary.run == "r0") & (summary.init == "scratch")].iloc[0]
    assert scratch["median_f2"] == pytest.approx(0.2) and scratch["median_dice"] == pytest.approx(0.3)


def test_aggregate_runs_column_fallbacks_and_errors(tmp_path):
    _patients(tmp_path / "a", pd.DataFrame({"f2": [0.1, 0.5, 0.9], "dice_mean": [0.3, 0.2, 0.1]}))
    summary = aggregate_runs({"a": ({"seed": 1}, tmp_path / "a")})
    assert summary[["init", "n_patients", "median_f2", "median_dice"]].values.tolist() == [["all", 3, 0.5, 0.2]]
    _patients(tmp_path / "b", pd.DataFrame({"f2": [0.1], "recall": [0.3]}))
    with pytest.raises(SapkitError, match="lacks any of the columns"):
        aggregate_runs({"b": ({}, tmp_path / "b")})
    with pytest.raises(SapkitError, match=r"run c has no .*patients\.csv"):
        aggregate_runs({"c": ({}, tmp_path / "c")})


def test_link_reused_links_models_and_copies_folds(tmp_path):
    src = RunDir(tmp_path / "done")
    for folder in (src.data, src.skeleton.path, src.ssl.path):
        folder.mkdir(parents=True)
    src.splits_json.write_text(json.dumps({"k": 3}))
    src.fingerprint_json.write_text("{}")
    dst = RunDir(tmp_path / "sweep" / "seed=1")
    dst.path.mkdir(parents=True)
    dst.splits_json.write_text(json.dumps({"k": 5}))  # already there: kept
    _link_reused(src.path, dst.path)
    assert dst.data.is_symlink() and dst.data.resolve() == src.data.resolve()
    assert dst.skeleton.path.is_symlink() and dst.ssl.path.is_symlink()
    assert json.loads(dst.splits_json.read_text()) == {"k": 5}
    assert dst.fingerprint_json.read_text() == "{}" and not dst.fingerprint_json.is_symlink()
    _link_reused(src.path, dst.path)  # idempotent
    with pytest.raises(SapkitError, match="reuse folder .*missing does not exist"):
        _link_reused(tmp_path / "missing", dst.path)


def test_label_efficiency_figure_averages_other_axes(tmp_path):
    summary = pd.DataFrame({
        "run": ["a", "b", "c", "d"], "seed": [1, 2, 1, 2], "lesion.label_fraction": [0.5, 0.5, 1.0, 1.0],
        "init": ["sap"] * 4, "n_patients": [2] * 4,
        "median_f2": [0.2, 0.4, 0.6, 0.8], "median_dice": [0.1, 0.3, 0.5, 0.7]})
    fig = label_efficiency_figure(summary)
    assert len(fig.data) == 2  # F2 and Dice panels for the one init
    f2, dice = fig.data
    assert list(f2.x) == [0.5, 1.0] and list(f2.y) == pytest.approx([0.3, 0.7])
    assert list(dice.y) == pytest.approx([0.2, 0.6]) and f2.showlegend and not dice.showlegend
