"""The whole series headless (sapkit reproduce --profile smoke), its artefacts, failure reporting and sweep."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from sapkit.cli import main
from sapkit.config import load_config
from sapkit.pipeline.reproduce import NOTEBOOKS
from sapkit.data.splits import fold_subjects


def test_every_notebook_ran_and_left_its_record(smoke_series):
    for name in NOTEBOOKS:
        executed = smoke_series / "notebooks" / f"{name}.ipynb"
        nb = json.loads(executed.read_text())
        errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, (name, errors)
        assert json.loads((smoke_series / "notebooks" / f"{name}.done.json").read_text())["seconds"] > 0


def test_run_metadata_is_complete(smoke_series):
    config = yaml.safe_load((smoke_series / "config.yaml").read_text())
    assert config["profile"] == "smoke" and config == yaml.safe_load(yaml.safe_dump(config))
    versions = json.loads((smoke_series / "versions.json").read_text())
    assert {"python", "torch", "monai", "numpy", "cuda", "gpu"} <= set(versions)
    splits = json.loads((smoke_series / "splits.json").read_text())
    assert splits["k"] == 3 and splits["tuning_fold"] == 2
    cards = list(smoke_series.rglob("MODEL_CARD.md"))
    models = list(smoke_series.rglob("model_final.pt"))
    assert len(models) == 2 + 3 * 2  # skeleton, ssl, 3 inits × (fold 0 + tune)
    assert {c.parent for c in cards} == {m.parent for m in models}
    for card in cards:
        text = card.read_text()
        assert "0 = T1-weighted, 1 = DWI b = 1000" in text  # channel order stated


def test_probability_maps_for_every_held_out_patient(smoke_series):
    splits = json.loads((smoke_series / "splits.json").read_text())
    manifest = pd.read_csv(smoke_series / "data" / "manifest.csv")
    patients = manifest[manifest.cohort == "patient"]
    for init in ("scratch", "ssl", "sap"):
        for fold in ("0", "tune"):
            subjects = set(fold_subjects(splits, fold))
            for scan_id in patients[patients.subject_id.isin(subjects)].scan_id:
                assert (smoke_series / "predictions" / init / f"{scan_id}_prob.nii.gz").is_file(), (init, fold, scan_id)
        transfer = smoke_series / "lesion" / init / "fold_0" / "transfer.csv"
        assert transfer.is_file() == (init != "scratch")


def test_evaluation_tables_and_report(smoke_series):
    patients = pd.read_csv(smoke_series / "eval" / "patients.csv")
    assert set(patients["init"]) == {"scratch", "ssl", "sap"}
    splits = json.loads((smoke_series / "splits.json").read_text())
    assert set(patients["subject_id"]) == set(splits["folds"]["0"])  # only the fine-tuned test fold
    table = (smoke_series / "eval" / "table1.md").read_text()
    assert "F2" in table and "0.448" in table  # the paper's SAP F2 sits beside ours
    threshold = json.loads((smoke_series / "eval" / "threshold.json").read_text())
    assert set(threshold) >= {"scratch", "ssl", "sap"}
    report = (smoke_series / "report.html").read_text()
    assert "Table 1" in report and "Lesion fine-tuning: learning curves" in report and "plotly" in report


def test_complete_notebooks_are_skipped_and_failures_name_the_cell(smoke_series, capsys):
    assert main(["reproduce", "--profile", "smoke", "--run-dir", str(smoke_series), "--notebooks", "00_data"]) == 0
    assert "00_data: skipped" in capsys.readouterr().out
    # a parameter that passes validation but breaks the series: too few patients for 3 folds
    failing = smoke_series.parent / "failing"
    code = main(["reproduce", "--profile", "smoke", "--run-dir", str(failing), "-p", "synth.n_patients=2",
                 "--notebooks", "00_data"])
    err = capsys.readouterr().err
    assert code == 1
    assert "notebook 00_data failed in code cell" in err and "cannot fill 3 folds" in err


def test_sweep_over_a_two_by_two_grid(smoke_series, tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump(sort_keys=False, data={
        "profile": "smoke", "base_dir": "sweep", "reuse": str(smoke_series),
        "notebooks": ["04_lesion_finetuning", "05_lesion_analysis"],
        "fixed": {"lesion.inits": ["scratch", "sap"]},
        "grid": {"seed": [1, 2], "lesion.label_fraction": [0.5, 1.0]},
    }))
    assert main(["sweep", str(grid)]) == 0
    base = tmp_path / "sweep"
    runs = sorted(p for p in base.iterdir() if p.is_dir())
    assert [p.name for p in runs] == sorted(["seed=1__lesion.label_fraction=0.5", "seed=1__lesion.label_fraction=1.0",
                                             "seed=2__lesion.label_fraction=0.5", "seed=2__lesion.label_fraction=1.0"])
    for run in runs:
        assert (run / "eval" / "patients.csv").is_file()
        assert (run / "data").is_symlink()  # pretraining and data reused, not recomputed
    summary = pd.read_csv(base / "sweep_summary.csv")
    assert len(summary) == 4 * 2 and set(summary["init"]) == {"scratch", "sap"}
    assert summary["median_f2"].between(0, 1).all()
    assert (base / "label_efficiency.html").stat().st_size > 10_000
