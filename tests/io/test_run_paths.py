import json
from pathlib import Path

import pytest

from sapkit.config import load_config
from sapkit.errors import ConfigError
from sapkit.io.run_paths import PROB_SUFFIX, ModelDir, PredictionDir, RunDir, default_run_dir
from sapkit.io.run_record import prepare_run_dir

# The documented run-folder layout, relative to the run folder.
LAYOUT = {
    "config_yaml": "config.yaml",
    "versions_json": "versions.json",
    "splits_json": "splits.json",
    "fingerprint_json": "fingerprint.json",
    "report_html": "report.html",
    "data": "data",
    "labels_dir": "labels",
    "lesion_dir": "lesion",
    "predictions_dir": "predictions",
    "eval_dir": "eval",
    "threshold_json": "eval/threshold.json",
    "table1_md": "eval/table1.md",
    "figures_dir": "figures",
    "notebooks_dir": "notebooks",
}

MODEL_FILES = {
    "checkpoint_last": "checkpoint_last.pt",
    "log_csv": "log.csv",
    "transfer_csv": "transfer.csv",
    "model_card": "MODEL_CARD.md",
}


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


@pytest.mark.parametrize("attr, rel", sorted(LAYOUT.items()))
def test_run_level_paths_follow_the_layout(tmp_path, attr, rel):
    assert getattr(RunDir(tmp_path), attr) == tmp_path / rel


@pytest.mark.parametrize("task", ["skeleton", "ssl"])
def test_pretraining_model_dirs(tmp_path, task):
    md = getattr(RunDir(tmp_path), task)
    assert isinstance(md, ModelDir) and md.path == tmp_path / task
    assert md.model() == tmp_path / task / "model_final.pt"
    assert md.model("best") == tmp_path / task / "model_best.pt"
    assert {a: _rel(getattr(md, a), md.path) for a in MODEL_FILES} == MODEL_FILES


@pytest.mark.parametrize("fold, name", [(3, "fold_3"), ("3", "fold_3"), (0, "fold_0"), ("tune", "fold_tune")])
def test_lesion_fold_folder_accepts_int_str_and_tune(tmp_path, fold, name):
    rd = RunDir(str(tmp_path))
    assert rd.lesion("sap", fold).path == tmp_path / "lesion" / "sap" / name
    assert rd.lesion_model("sap", fold) == tmp_path / "lesion" / "sap" / name / "model_final.pt"
    assert rd.lesion_model("ssl", fold, which="best") == tmp_path / "lesion" / "ssl" / name / "model_best.pt"
    assert rd.lesion("scratch", fold).log_csv == tmp_path / "lesion" / "scratch" / name / "log.csv"


def test_int_and_str_fold_give_equal_objects(tmp_path):
    assert RunDir(tmp_path).lesion("sap", 2) == RunDir(str(tmp_path)).lesion("sap", "2")
    assert RunDir(tmp_path) == RunDir(str(tmp_path))


def test_unknown_model_choice_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="'final' or 'best'.*'last'"):
        RunDir(tmp_path).lesion_model("sap", 0, which="last")


def test_prediction_and_eval_paths(tmp_path):
    rd = RunDir(tmp_path)
    assert rd.predictions("sap") == tmp_path / "predictions" / "sap"
    assert rd.probability_map("ssl", "p01_s0") == tmp_path / "predictions" / "ssl" / "p01_s0_prob.nii.gz"
    assert rd.eval_table("lesions") == tmp_path / "eval" / "lesions.csv"
    assert rd.eval_table("comparisons") == tmp_path / "eval" / "comparisons.csv"
    assert rd.propagation_dice_csv == tmp_path / "labels" / "propagation_dice.csv"
    assert rd.skeleton_qc_csv == tmp_path / "labels" / "skeleton_qc.csv"
    assert rd.propagated_label("h01_s1") == tmp_path / "labels" / "h01_s1_skeleton_propagated.nii.gz"
    assert rd.propagated_label("h01_s1", "global") == tmp_path / "labels" / "h01_s1_skeleton_global.nii.gz"
    assert rd.figure_json("froc") == tmp_path / "figures" / "froc.json"
    assert rd.notebook("05_lesion_analysis") == tmp_path / "notebooks" / "05_lesion_analysis.ipynb"
    assert rd.notebook_marker("00_data") == tmp_path / "notebooks" / "00_data.done.json"
    assert rd.jobs("sweep") == tmp_path / "jobs" / "sweep"


def test_prediction_dir_files_and_scan_ids(tmp_path):
    pd_ = PredictionDir(tmp_path / "out")
    assert pd_.scan_ids() == []  # folder missing
    assert pd_.probability_map("a") == tmp_path / "out" / f"a{PROB_SUFFIX}"
    assert pd_.mask("a") == tmp_path / "out" / "a_mask.nii.gz"
    assert pd_.lesion_table("a") == tmp_path / "out" / "a_lesions.csv"
    pd_.path.mkdir()
    for sid in ("p2_s1", "p1_s0"):
        pd_.probability_map(sid).write_bytes(b"")
    pd_.mask("p3_s0").write_bytes(b"")  # a mask alone is not a prediction
    assert pd_.scan_ids() == ["p1_s0", "p2_s1"]


def test_notebook_markers_sorted_by_name(tmp_path):
    rd = RunDir(tmp_path)
    assert rd.notebook_markers() == {}
    rd.notebooks_dir.mkdir()
    for name in ("02_skeleton_pretraining", "00_data"):
        rd.notebook_marker(name).write_text("{}")
    rd.notebook("01_skeleton_labelling").write_text("{}")  # no marker: not finished
    assert list(rd.notebook_markers()) == ["00_data", "02_skeleton_pretraining"]
    assert rd.notebook_markers()["00_data"] == rd.notebook_marker("00_data")


def test_data_dir_defaults_to_the_run_data_folder(tmp_path):
    assert RunDir.data_dir(tmp_path) == tmp_path / "data"
    assert RunDir.data_dir(tmp_path, tmp_path / "mine") == tmp_path / "mine"
    assert RunDir.data_dir(tmp_path, str(tmp_path / "mine")) == tmp_path / "mine"
    assert default_run_dir("demo") == Path("runs") / "demo"


def test_repr_names_the_folder(tmp_path):
    assert repr(RunDir("runs/x")) == "RunDir('runs/x')"
    assert repr(RunDir("runs/x").skeleton) == "ModelDir('runs/x/skeleton')"
    assert repr(PredictionDir("p")) == "PredictionDir('p')"


def test_prepare_run_dir_round_trip(tmp_path):
    config = load_config("smoke", {"seed": 7, "lesion.epochs": 3})
    rd = prepare_run_dir(tmp_path / "runs" / "a", config)
    assert isinstance(rd, RunDir) and rd.path == tmp_path / "runs" / "a"
    assert sorted(p.name for p in rd.path.iterdir()) == ["config.yaml", "versions.json"]
    assert load_config(rd.config_yaml) == config
    versions = json.loads(rd.versions_json.read_text())
    import numpy
    import torch

    assert versions["numpy"] == numpy.__version__ and versions["torch"] == torch.__version__
    assert versions["gpu"] is None or isinstance(versions["gpu"], str)
    # the same configuration again: the record is left as it is (the series writes it once)
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (rd.config_yaml, rd.versions_json)}
    assert prepare_run_dir(rd, load_config("smoke", {"seed": 7, "lesion.epochs": 3})) == rd
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (rd.config_yaml, rd.versions_json)} == before
    # another configuration replaces it; a damaged record is rewritten
    config2 = load_config("smoke", {"seed": 8})
    assert prepare_run_dir(rd, config2) == rd
    assert load_config(rd.config_yaml) == config2
    rd.versions_json.write_text("{not json")
    prepare_run_dir(rd, config2)
    assert json.loads(rd.versions_json.read_text())["numpy"] == numpy.__version__
