"""Cohort evaluation on a fake run folder: threshold tuning, eval/ files, CLI, notebook 05."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fake_run import INITS, write_fake_run
from sapkit.config import load_config
from sapkit.errors import EvaluationError
from sapkit.evaluation.cohort import case_table, cohort_counts, evaluate_run
from sapkit.io.run_paths import EvalDir, RunDir
from sapkit.data.manifest import load_manifest
from sapkit.metrics import lesion_report, tune_threshold
from sapkit.data.splits import load_splits

#: Kernel used to execute notebooks; "python3" also works where the sapkit kernel is not registered.
KERNEL = "sapkit"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory) -> Path:
    return write_fake_run(tmp_path_factory.mktemp("run") / "run")


@pytest.fixture(scope="module")
def evaluated(fake_run):
    return evaluate_run(fake_run, load_config("smoke"), progress=False)


def test_run_writes_every_contract_file(fake_run, evaluated):
    for name in ("threshold.json", "lesions.csv", "patients.csv", "predictions.csv", "table1.csv", "table1.md",
                 "froc.csv", "comparisons.csv"):
        assert (RunDir(fake_run).eval_dir / name).is_file(), name
    saved = json.loads(RunDir(fake_run).threshold_json.read_text())
    assert set(saved) == set(INITS)
    assert all(saved[i]["threshold"] == evaluated.thresholds[i].threshold for i in INITS)
    patients = pd.read_csv(RunDir(fake_run).eval_table("patients"))
    assert len(patients) == len(evaluated.patients) and set(patients["init"]) == set(INITS)


def test_threshold_tuned_on_tuning_fold_only_and_applied_to_test_folds(fake_run, evaluated):
    splits = load_splits(fake_run)
    manifest = load_manifest(RunDir(fake_run).data, check_files=False)
    tuning = str(splits["tuning_fold"])
    assert set(evaluated.patients["fold"].astype(str)) <= {f for f in splits["folds"] if f != tuning}
    tune_cases = case_table(manifest, splits, RunDir(fake_run).predictions("sap"), folds="tune")
    assert set(tune_cases["fold"]) == {tuning} and not tune_cases.empty
    counts = cohort_counts(tune_cases, eval_config=load_config("smoke").eval)
    expected = tune_threshold(counts)
    assert evaluated.thresholds["sap"].threshold == expected.threshold
    # the tuned threshold maximises the median F2 of the tuning patients, ties to the lowest
    med = counts.groupby("threshold")["f2"].median()
    assert expected.threshold == med.index[med.to_numpy() == med.max()].min()


def test_tables_consistent_with_counts_and_single_case_report(fake_run, evaluated):
    sap = evaluated.patients[evaluated.patients.init == "sap"]
    t = evaluated.thresholds["sap"].threshold
    c = evaluated.counts[(evaluated.counts.init == "sap") & np.isclose(evaluated.counts.threshold, t)]
    merged = sap.merge(c, on="scan_id", suffixes=("", "_c"))
    assert len(merged) == len(sap)
    assert (merged["tp"] == merged["tp_c"]).all() and (merged["fp"] == merged["fp_c"]).all()
    les = evaluated.lesions[evaluated.lesions.init == "sap"]
    assert les.groupby("scan_id").size().sum() == sap["n_lesions"].sum()
    assert set(les["bone_region"]) <= {"pelvis", "lumbar spine", "unlabelled"}


def test_table1_has_paper_columns(evaluated):
    t1 = evaluated.table1
    assert t1["metric"].tolist()[0] == "sensitivity (all lesions)"
    assert t1.loc[t1.metric == "F2", "sap paper"].item() == "0.448"
    assert t1.loc[t1.metric == "FROC-AUC (≤ 15 FP/exam)", "sap paper"].item() == "7.10"
    for init in INITS:
        assert {f"{init} median [95% CI]", f"{init} IQR", f"{init} paper"} <= set(t1.columns)
    auc = evaluated.froc["sap"]["all"].auc
    row = evaluated.table1_values.query("metric == 'froc_auc' and init == 'sap'")
    assert row["median"].item() == pytest.approx(auc) and 0 <= auc <= 15


def test_missing_predictions_raise(tmp_path):
    run = write_fake_run(tmp_path / "run", n_patients=6)
    RunDir(run).probability_map("sap", "p05_s0").unlink()
    with pytest.raises(EvaluationError, match="missing"):
        evaluate_run(run, load_config("smoke"), inits=["sap"], progress=False)
    with pytest.raises(EvaluationError, match="no predictions"):
        evaluate_run(run, load_config("smoke"), inits=["nope"], progress=False)


def test_cli_case_json_keys(fake_run, tmp_path):
    from sapkit.cli import main

    out = tmp_path / "case.json"
    data = RunDir(fake_run).data
    rc = main(["evaluate", "--gt", str(data / "p01_lesion.nii.gz"), "--pred",
               str(RunDir(fake_run).probability_map("sap", "p01_s0")), "--prob", "--threshold", "0.5",
               "--tolerance-mm", "3", "--hit", "iou:0.3", "--json", str(out)])
    assert rc == 0
    doc = json.loads(out.read_text())
    assert {"dice", "nsd", "global_dice", "tp", "fn", "fp", "sensitivity", "precision", "f2", "lesions",
            "predictions", "parameters"} <= set(doc)
    assert set(doc["lesions"][0]) == {"id", "volume_ml", "detected", "dice", "nsd"}
    assert doc["parameters"]["tolerance_mm"] == 3.0 and doc["parameters"]["hit"] == "iou:0.3"
    assert doc["parameters"]["threshold"] == 0.5
    # the same numbers as the library call
    from sapkit.evaluation.cohort import read_prob_map
    from sapkit.io.nifti import read_label

    gt, _, _ = read_label(data / "p01_lesion.nii.gz")
    prob, _ = read_prob_map(RunDir(fake_run).probability_map("sap", "p01_s0"))
    rep = lesion_report(gt, prob_map=prob, threshold=0.5, spacing_mm=(3, 3, 4), tolerance_mm=3, hit="iou:0.3")
    assert (doc["tp"], doc["fn"], doc["fp"]) == (rep.patient.tp, rep.patient.fn, rep.patient.fp)
    assert doc["dice"] == pytest.approx(rep.patient.dice_mean)
    assert (doc["nsd"] is None) == math.isnan(rep.patient.nsd_detected)


def test_cli_cohort_and_bad_input(fake_run, tmp_path, capsys):
    from sapkit.cli import main

    out = EvalDir(tmp_path / "cohort")
    rd = RunDir(fake_run)
    rc = main(["evaluate", "--manifest", str(rd.data), "--pred-dir", str(rd.predictions("ssl")),
               "--threshold", "0.4", "--out", str(out.path)])
    assert rc == 0
    patients = pd.read_csv(out.table("patients"))
    assert len(patients) == 6 and out.table1_md.is_file()
    rc = main(["evaluate", "--gt", str(rd.data / "p01_lesion.nii.gz"), "--pred",
               str(rd.data / "p02_t1.nii.gz")])
    assert rc == 1 and "non-integer" in capsys.readouterr().err


def test_notebook_05_runs_headless(fake_run, tmp_path):
    import papermill as pm

    out = tmp_path / "05_out.ipynb"
    pm.execute_notebook(str(REPO / "notebooks" / "05_lesion_analysis.ipynb"), str(out), kernel_name=KERNEL,
                        parameters={"profile": "smoke", "run_dir": str(fake_run), "overrides": {}},
                        cwd=str(REPO), progress_bar=False)
    nb = json.loads(out.read_text())
    errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert RunDir(fake_run).table1_md.is_file()


def test_cli_cohort_jobs_match_serial(fake_run, tmp_path):
    """``--jobs 2`` evaluates the cases in worker processes with the same tables, in the same order."""
    from sapkit.cli import main

    rd = RunDir(fake_run)
    tables = []
    for jobs in ("1", "2"):
        out = EvalDir(tmp_path / f"jobs{jobs}")
        assert main(["evaluate", "--manifest", str(rd.data), "--pred-dir", str(rd.predictions("ssl")),
                     "--threshold", "0.4", "--out", str(out.path), "--jobs", jobs]) == 0
        tables.append((pd.read_csv(out.table("patients")), pd.read_csv(out.table("lesions"))))
    pd.testing.assert_frame_equal(tables[0][0], tables[1][0])
    pd.testing.assert_frame_equal(tables[0][1], tables[1][1])


def test_progress_bars_reach_the_last_case(fake_run, monkeypatch):
    """Every bar of evaluate_run runs to its end (a zip over the rows stopped each one a step short: 17/18)."""
    import sapkit.evaluation.cohort as cohort

    finished = []

    def recording_bar(items, **kw):
        items = list(items)

        def walk():
            for k, item in enumerate(items, 1):
                yield item
                if k == len(items):
                    finished.append(kw.get("desc"))
        return walk()

    monkeypatch.setattr(cohort, "progress_bar", recording_bar)
    evaluate_run(fake_run, load_config("smoke"), progress=True)
    n_bars = 2 * len(INITS)  # tuning counts and test-fold evaluation per init
    assert len(finished) == n_bars, finished


def test_run_folder_is_evaluated_with_its_own_configuration(tmp_path):
    """`sapkit evaluate --run-dir R` without --profile uses R/config.yaml (not the smoke profile's eval)."""
    import yaml

    from sapkit.cli import main
    from sapkit.config import config_to_dict

    run = write_fake_run(tmp_path / "run")
    recorded = config_to_dict(load_config("smoke", {"eval.n_bootstrap": 37, "eval.thresholds": [0.3, 0.6]}))
    RunDir(run).config_yaml.write_text(yaml.safe_dump(recorded))
    assert main(["evaluate", "--run-dir", str(run)]) == 0
    choice = json.loads(RunDir(run).threshold_json.read_text())
    assert {c["threshold"] for c in choice.values()} <= {0.3, 0.6}
    assert all(c["curve"]["threshold"] == [0.3, 0.6] for c in choice.values())
    assert "(37 resamples" in RunDir(run).table1_md.read_text()
