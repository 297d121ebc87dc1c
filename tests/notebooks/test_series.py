"""The whole series headless (sapkit reproduce --profile smoke): its artefacts and failure reporting.

The sweep over the smoke run is tested in tests/jobs/test_executors.py (serial and submitit)."""

from __future__ import annotations

import json

import pandas as pd
import yaml

from sapkit.cli import main
from sapkit.pipeline.reproduce import NOTEBOOKS
from sapkit.data.splits import fold_subjects
from sapkit.io.run_paths import RunDir


def test_every_notebook_ran_and_left_its_record(smoke_series):
    rd = RunDir(smoke_series)
    for name in NOTEBOOKS:
        nb = json.loads(rd.notebook(name).read_text())
        errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, (name, errors)
        assert json.loads(rd.notebook_marker(name).read_text())["seconds"] > 0


def test_run_metadata_is_complete(smoke_series):
    rd = RunDir(smoke_series)
    config = yaml.safe_load(rd.config_yaml.read_text())
    assert config["profile"] == "smoke" and config == yaml.safe_load(yaml.safe_dump(config))
    versions = json.loads(rd.versions_json.read_text())
    assert {"python", "torch", "monai", "numpy", "cuda", "gpu"} <= set(versions)
    splits = json.loads(rd.splits_json.read_text())
    assert splits["k"] == 3 and splits["tuning_fold"] == 2
    folders = [rd.skeleton, rd.ssl] + [rd.lesion(i, f) for i in ("scratch", "ssl", "sap") for f in (0, "tune")]
    models = list(smoke_series.rglob(rd.skeleton.model().name))
    assert sorted(models) == sorted(m.model() for m in folders)  # skeleton, ssl, 3 inits × (fold 0 + tune)
    cards = list(smoke_series.rglob(rd.skeleton.model_card.name))
    assert sorted(cards) == sorted(m.model_card for m in folders)
    for card in cards:
        text = card.read_text()
        assert "0 = T1-weighted, 1 = DWI b = 1000" in text  # channel order stated


def test_probability_maps_for_every_held_out_patient(smoke_series):
    rd = RunDir(smoke_series)
    splits = json.loads(rd.splits_json.read_text())
    manifest = pd.read_csv(rd.data / "manifest.csv")
    patients = manifest[manifest.cohort == "patient"]
    for init in ("scratch", "ssl", "sap"):
        for fold in ("0", "tune"):
            subjects = set(fold_subjects(splits, fold))
            for scan_id in patients[patients.subject_id.isin(subjects)].scan_id:
                assert rd.probability_map(init, scan_id).is_file(), (init, fold, scan_id)
        assert rd.lesion(init, 0).transfer_csv.is_file() == (init != "scratch")


def test_evaluation_tables_and_report(smoke_series):
    rd = RunDir(smoke_series)
    patients = pd.read_csv(rd.eval_table("patients"))
    assert set(patients["init"]) == {"scratch", "ssl", "sap"}
    splits = json.loads(rd.splits_json.read_text())
    assert set(patients["subject_id"]) == set(splits["folds"]["0"])  # only the fine-tuned test fold
    table = rd.table1_md.read_text()
    assert "F2" in table and "0.448" in table  # the paper's SAP F2 sits beside ours
    threshold = json.loads(rd.threshold_json.read_text())
    assert set(threshold) >= {"scratch", "ssl", "sap"}
    report = rd.report_html.read_text()
    assert "Table 1" in report and "Lesion fine-tuning: learning curves" in report and "plotly-gz" in report
    for title in ("Paired tests", "FROC, all lesions", "FROC, lesions ≥ 1 mL", "Patient F2 per init",
                  "Mean lesion Dice per patient", "Threshold tuning", "Detection rate vs lesion volume"):
        assert title in report, title
    assert rd.report_html.stat().st_size <= 2_000_000


def _outputs(rd: RunDir, name: str) -> list[dict]:
    nb = json.loads(rd.notebook(name).read_text())
    return [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]


def test_no_widget_progress_bar_is_stored_in_an_executed_notebook(smoke_series):
    rd = RunDir(smoke_series)
    for name in NOTEBOOKS:
        widgets = [o for o in _outputs(rd, name) if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
        assert not widgets, (name, len(widgets))
        text = "".join("".join(o.get("text", "")) for o in _outputs(rd, name))
        assert "running over TCP without encryption" not in text


def test_notebook_05_looks_at_a_case(smoke_series):
    rd = RunDir(smoke_series)
    text = "".join("".join(o.get("text", "")) + json.dumps(o.get("data", {})) for o in _outputs(rd, "05_lesion_analysis"))
    assert "viewer: plotly" in text  # headless: the static slice viewer, and the notebook says so
    assert "largest missed lesion" in text or "largest lesion" in text
    assert "sapkit-lesion-table" not in text and "</b> lesions," in text  # the explorer's static view and table
    assert text.count("application/vnd.plotly.v1+json") >= 9  # 7 result figures + viewer + explorer, all stored


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
