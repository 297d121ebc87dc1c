"""Output safety of the commands that make data and runs: synth, split, preprocess, train, sweep,
reproduce, readme, seeds.

Each case points an output of the command at one of its inputs; see ``output_safety_world`` for
what every case must do (refused before anything is written).
"""

from __future__ import annotations

import shutil

import pytest
import yaml

from output_safety_world import SMOKE, at, copy_run, grid, check_refused, registry, world  # noqa: F401 (the fixture)

CASES, case = registry()


# synth
@case("synth --out onto the profile")
def _(w, t):
    return ["synth", "--profile", at(w, "profile.yaml"), "--out", at(w, "profile.yaml")], \
        r"is an input file \(the profile"


@case("synth --out holding the profile as manifest.yaml")
def _(w, t):
    (t / "D").mkdir()
    shutil.copy(SMOKE, t / "D" / "manifest.yaml")
    return ["synth", "--profile", str(t / "D" / "manifest.yaml"), "--out", str(t / "D")], \
        r"--out .*D would overwrite input file\(s\) .*manifest\.yaml.*: the profile"


# split
@case("split --run-dir onto the data folder")
def _(w, t):
    return ["split", at(w, "data"), "--run-dir", at(w, "data")], r"--run-dir .*data is the input data folder"


@case("split --run-dir onto the manifest")
def _(w, t):
    return ["split", at(w, "data"), "--run-dir", at(w, "data/manifest.yaml")], r"is an input file \(the manifest"


@case("split --run-dir onto the profile")
def _(w, t):
    return ["split", at(w, "data"), "--profile", at(w, "profile.yaml"), "--run-dir", at(w, "profile.yaml")], \
        r"is an input file \(the profile"


# preprocess
@case("preprocess --out inside the stations CSV's folder")
def _(w, t):
    return ["preprocess", at(w, "raw/stations.csv"), "--out", at(w, "raw/out")], \
        r"--out .*raw/out lies inside the input folder of the stations CSV"


@case("preprocess --out onto the stations CSV")
def _(w, t):
    return ["preprocess", at(w, "raw/stations.csv"), "--out", at(w, "raw/stations.csv")], \
        r"is an input file \(the stations CSV\)"


@case("preprocess --out onto the rules file")
def _(w, t):
    return ["preprocess", at(w, "raw/stations.csv"), "--rules", at(w, "raw/rules.yaml"), "--out", at(w,
            "raw/rules.yaml")], \
        r"is an input file \(the rules file\)"


@case("preprocess --out onto the labels CSV")
def _(w, t):
    return ["preprocess", at(w, "raw"), "--labels", at(w, "raw/labels.csv"), "--out", at(w, "raw/labels.csv")], \
        r"is an input file \(the labels CSV\)"


# train
@case("train --run-dir onto the data folder")
def _(w, t):
    return ["train", "skeleton", "--data", at(w, "data"), "--run-dir", at(w, "data")], \
        r"--run-dir .*data is the input data folder"


@case("train lesion --pretrained onto the model it writes")
def _(w, t):
    run = copy_run(w, t)
    return ["train", "lesion", "--init", "sap", "--fold", "0", "--run-dir", str(run),
            "--pretrained", str(run / "lesion/sap/fold_0/model_final.pt")], \
        r"--run-dir .* would overwrite input file\(s\) .*model_final\.pt.*: the pretrained sap weights"


@case("train --run-dir onto the profile")
def _(w, t):
    return ["train", "skeleton", "--profile", at(w, "profile.yaml"), "--data", at(w, "data"), "--run-dir",
            at(w, "profile.yaml")], r"is an input file \(the profile"


# sweep
@case("sweep base_dir onto the reuse run")
def _(w, t):
    return ["sweep", str(grid(t / "grid.yaml", base_dir=str(w / "run"), reuse=str(w / "run")))], \
        r"base_dir of .*grid\.yaml .*run is the input reuse run folder"


@case("sweep base_dir inside the reuse run's data")
def _(w, t):
    return ["sweep", str(grid(t / "grid.yaml", base_dir=str(w / "run/data/sweep"), reuse=str(w / "run")))], \
        r"lies inside the input folder of the reuse run"


@case("sweep base_dir onto the grid file")
def _(w, t):
    return ["sweep", str(grid(t / "grid.yaml", base_dir="grid.yaml"))], r"grid\.yaml is an input file \(the grid file\)"


@case("sweep base_dir holding the grid file as sweep_summary.csv")
def _(w, t):
    return ["sweep", str(grid(t / "sweep_summary.csv", base_dir="."))], \
        r"would overwrite input file\(s\) .*sweep_summary\.csv.*: the grid file"


@case("sweep base_dir onto the grid's profile")
def _(w, t):
    grid = t / "grid.yaml"
    grid.write_text(yaml.safe_dump({"profile": str(w / "profile.yaml"), "grid": {"seed": [1]},
                                    "base_dir": str(w / "profile.yaml")}))
    return ["sweep", str(grid)], r"is an input file \(the grid's profile\)"


# reproduce
@case("reproduce --run-dir onto the profile")
def _(w, t):
    return ["reproduce", "--profile", at(w, "profile.yaml"), "--run-dir", at(w, "profile.yaml")], \
        r"is an input file \(the profile"


@case("reproduce with the profile as RUN_DIR/config.yaml")
def _(w, t):
    run = copy_run(w, t)
    return ["reproduce", "--profile", str(run / "config.yaml"), "--run-dir", str(run)], \
        r"--run-dir .* would overwrite input file\(s\) .*config\.yaml.*: the profile"


# readme
@case("readme --readme inside the run folder")
def _(w, t):
    return ["readme", "--run-dir", at(w, "run"), "--readme", at(w, "run/eval/table1.md")], \
        r"--readme .*table1\.md lies inside the input run folder"


@case("readme --readme onto the run folder")
def _(w, t):
    return ["readme", "--run-dir", at(w, "run"), "--readme", at(w, "run")], r"lies inside the input run folder"


# seeds
@case("seeds --out onto the profile")
def _(w, t):
    return ["seeds", "--profile", at(w, "profile.yaml"), "--run-dir", str(t / "base"), "--out", at(w,
            "profile.yaml")], \
        r"is an input file \(the profile"


@pytest.mark.parametrize("name", list(CASES))
def test_output_onto_an_input_is_refused_before_anything_is_written(name, world, tmp_path, monkeypatch, capsys):
    check_refused(CASES[name], world, tmp_path, monkeypatch, capsys)
