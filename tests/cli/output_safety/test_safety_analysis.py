"""Output safety of the analysis commands: evaluate (one case, cohort, run folder), predict, prepare,
export, fingerprint.

Each case points an output of the command at one of its inputs; see ``output_safety_world`` for
what every case must do (refused before anything is written).
"""

from __future__ import annotations

import shutil

import pytest

from output_safety_world import (  # world: the fixture
    at, copy_run, export_argv, named_like_prepare_outputs, predict_argv, prob_name_cohort, check_refused,
    registry, world,
)

CASES, case = registry()


# evaluate: one case
@case("evaluate --json onto --gt")
def _(w, t):
    g, p = at(w, "data/p02_lesion.nii.gz"), at(w, "pred/p02_s0_prob.nii.gz")
    return ["evaluate", "--gt", g, "--pred", p, "--prob", "--json", g], \
        r"--json .* would overwrite input file\(s\) .*p02_lesion\.nii\.gz.*: the --gt mask"


@case("evaluate --json onto --pred")
def _(w, t):
    g, p = at(w, "data/p02_lesion.nii.gz"), at(w, "pred/p02_s0_prob.nii.gz")
    return ["evaluate", "--gt", g, "--pred", p, "--prob", "--json", p], \
        r"would overwrite input file\(s\) .*: the --pred map"


@case("evaluate --json onto --skeleton")
def _(w, t):
    g, s = at(w, "data/p02_lesion.nii.gz"), at(w, "data/h00_skel.nii.gz")
    return ["evaluate", "--gt", g, "--pred", g, "--skeleton", s, "--json", s], \
        r"would overwrite input file\(s\) .*: the --skeleton map"


@case("evaluate --json onto --gt through a symbolic link")
def _(w, t):
    g = at(w, "data/p02_lesion.nii.gz")
    (t / "report.json").symlink_to(g)
    return ["evaluate", "--gt", g, "--pred", g, "--json", str(t / "report.json")], \
        r"would overwrite input file\(s\) .*p02_lesion\.nii\.gz"


# evaluate: a cohort
def _cohort(w: Path, *extra: str) -> list[str]:
    return ["evaluate", "--manifest", at(w, "data"), "--pred-dir", at(w, "pred"), *extra]


@case("evaluate --out onto --pred-dir")
def _(w, t):
    return _cohort(w, "--out", at(w, "pred")), r"--out .*pred is the input prediction folder \(--pred-dir\)"


@case("evaluate --out onto the data folder")
def _(w, t):
    return _cohort(w, "--out", at(w, "data")), r"--out .*data is the input data folder"


@case("evaluate --out holding a link onto predictions.csv")
def _(w, t):
    (t / "out").mkdir()
    (t / "out" / "predictions.csv").symlink_to(w / "pred" / "predictions.csv")
    return _cohort(w, "--out", str(t / "out")), r"--out .*out would overwrite input file\(s\) .*pred/predictions\.csv"


@case("evaluate --json onto the manifest")
def _(w, t):
    return _cohort(w, "--json", at(w, "data/manifest.yaml")), \
        r"--json .* would overwrite .*: the manifest manifest\.yaml"


@case("evaluate --json onto the manifest CSV")
def _(w, t):
    return _cohort(w, "--json", at(w, "data/manifest.csv")), r"would overwrite .*: the CSV of the manifest"


@case("evaluate --json onto a GT mask of the manifest")
def _(w, t):
    return _cohort(w, "--json", at(w, "data/p03_lesion.nii.gz")), \
        r"would overwrite .*: lesion_label of scan p03_s0 named by"


@case("evaluate --json onto a probability map")
def _(w, t):
    return _cohort(w, "--json", at(w, "pred/p03_s0_prob.nii.gz")), \
        r"would overwrite .*: a probability map of --pred-dir"


@case("evaluate --json onto predictions.csv of --pred-dir")
def _(w, t):
    return _cohort(w, "--json", at(w, "pred/predictions.csv")), \
        r"would overwrite .*: the prediction table predictions\.csv"


@case("evaluate a scan listed in predictions.csv without its map")
def _(w, t):
    shutil.copytree(w / "pred", t / "pred")
    (t / "pred" / "p04_s0_prob.nii.gz").unlink()
    return ["evaluate", "--manifest", at(w, "data"), "--pred-dir", str(t / "pred"), "--out",
            str(t / "pred" / "eval")], \
        r"1 probability map\(s\) listed in .*predictions\.csv are missing .*\['p04_s0'\].*--allow-missing"


# evaluate: a run folder
@case("evaluate --run-dir with eval/ a link onto the data folder")
def _(w, t):
    run = copy_run(w, t)
    (run / "eval" / "table1.md").unlink()
    (run / "eval").rmdir()
    (run / "eval").symlink_to(run / "data")
    return ["evaluate", "--run-dir", str(run)], r"--run-dir .*eval is the input data folder"


@case("evaluate --run-dir with eval/ a link onto a prediction folder")
def _(w, t):
    run = copy_run(w, t)
    shutil.rmtree(run / "eval")
    (run / "eval").symlink_to(run / "predictions" / "sap")
    return ["evaluate", "--run-dir", str(run)], r"--run-dir .*eval is the input prediction folder"


# predict
@case("predict --out onto the data folder")
def _(w, t):
    return predict_argv(w, w / "data"), r"--out .*data is the input data folder"


@case("predict --out onto the checkpoint")
def _(w, t):
    return predict_argv(w, w / "model.pt"), r"--out .*model\.pt is an input file \(the lesion model checkpoint\)"


@case("predict --out holding an input named <scan_id>_prob.nii.gz")
def _(w, t):
    manifest, d = prob_name_cohort(w, t)
    return predict_argv(w, d, manifest), \
        r"--out .*D would overwrite input file\(s\) .*D/p02_s0_prob\.nii\.gz.*: t1 of scan p02_s0"


@case("predict --out holding a link onto a GT mask")
def _(w, t):
    (t / "out").mkdir()
    (t / "out" / "p03_s0_prob.nii.gz").symlink_to(w / "data" / "p03_lesion.nii.gz")
    return predict_argv(w, t / "out"), r"would overwrite input file\(s\) .*p03_lesion\.nii\.gz"


@case("predict --out holding the skeleton checkpoint as predictions.csv")
def _(w, t):
    (t / "out").mkdir()
    shutil.copy(w / "skeleton.pt", t / "out" / "predictions.csv")
    return predict_argv(w, t / "out", None, "--skeleton-checkpoint", str(t / "out" / "predictions.csv")), \
        r"would overwrite input file\(s\) .*predictions\.csv.*: the skeleton model checkpoint"


@case("predict --out onto the profile")
def _(w, t):
    return predict_argv(w, w / "profile.yaml", None, "--profile", at(w, "profile.yaml")), \
        r"is an input file \(the profile"


# prepare
@case("prepare --out onto the data folder")
def _(w, t):
    return ["prepare", at(w, "data"), "--out", at(w, "data")], r"--out .*data is the input data folder"


@case("prepare --out onto the manifest")
def _(w, t):
    return ["prepare", at(w, "data"), "--out", at(w, "data/manifest.yaml")], r"is an input file \(the manifest"


@case("prepare --out holding inputs under the output names")
def _(w, t):
    manifest, images = named_like_prepare_outputs(w, t)
    return ["prepare", str(manifest), "--out", str(images)], \
        r"would overwrite input file\(s\) .*h00_s0_t1\.nii\.gz.* named by"


# export
@case("export --out onto the run folder")
def _(w, t):
    return export_argv(w, w / "run"), r"--out .*run is the input run folder"


@case("export --out onto the model folder")
def _(w, t):
    return export_argv(w, w / "run/lesion/sap/fold_0"), r"--out .*fold_0 is the input model folder"


@case("export --out onto the checkpoint")
def _(w, t):
    return export_argv(w, w / "run/lesion/sap/fold_0/model_final.pt"), r"is an input file \(the model checkpoint\)"


@case("export --out onto the run's config.yaml")
def _(w, t):
    return export_argv(w, w / "run/config.yaml"), r"is an input file \(the run's configuration\)"


@case("export --out onto the data folder of --inputs")
def _(w, t):
    return export_argv(w, w / "data", "--inputs", at(w, "data"), "--scans", "p02_s0"), r"--out .*data is the input data folder"


# fingerprint
@case("fingerprint --json onto the manifest")
def _(w, t):
    return ["fingerprint", at(w, "data"), "--json", at(w, "data/manifest.yaml")], r"would overwrite .*: the manifest"


@case("fingerprint --json onto the manifest CSV")
def _(w, t):
    return ["fingerprint", at(w, "data"), "--json", at(w, "data/manifest.csv")], r"would overwrite .*: the CSV of"


@case("fingerprint --json onto a T1 image")
def _(w, t):
    return ["fingerprint", at(w, "data"), "--json", at(w, "data/h01_t1.nii.gz")], \
        r"would overwrite .*: t1 of scan h01_s0"


@pytest.mark.parametrize("name", list(CASES))
def test_output_onto_an_input_is_refused_before_anything_is_written(name, world, tmp_path, monkeypatch, capsys):
    check_refused(CASES[name], world, tmp_path, monkeypatch, capsys)
