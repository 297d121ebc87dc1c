"""Seed studies: per-run medians, sign counts and the pooled test, checked against hand counts and scipy."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from sapkit.cli import main
from sapkit.errors import EvaluationError
from sapkit.evaluation.seeds import seed_study, seed_study_markdown, verdicts
from sapkit.io.run_paths import RunDir

N_PATIENTS = 8


def _write_eval(run: Path, seed: int, shift: float, *, rng: np.random.Generator, oversized: int = 0) -> None:
    """patients.csv / comparisons.csv / froc.csv of a finished run: SAP's F2 = scratch's + shift + noise."""
    rd = RunDir(run)
    rd.eval_table("patients").parent.mkdir(parents=True, exist_ok=True)
    rows = []
    base = rng.uniform(0.1, 0.5, N_PATIENTS)
    for init, add in (("scratch", 0.0), ("ssl", 0.05), ("sap", shift)):
        for i in range(N_PATIENTS):
            f2 = float(base[i] + add + rng.normal(0, 0.01))
            rows.append({"init": init, "scan_id": f"p{i:02d}", "f2": f2, "global_dice": f2 / 2, "dice_mean": f2 / 3,
                         "sensitivity": f2, "precision": f2, "fp": 3.0, "n_merging": 0,
                         "n_oversized": int(init == "sap" and i < oversized)})
    pd.DataFrame(rows).to_csv(rd.eval_table("patients"), index=False)
    comp = [{"metric": m, "a": "sap", "b": b, "p_bonferroni": 0.01 if shift > 0.05 else 0.5}
            for m in ("f2", "global_dice", "dice_mean", "sensitivity", "precision", "fp") for b in ("scratch", "ssl")]
    pd.DataFrame(comp).to_csv(rd.eval_table("comparisons"), index=False)
    pd.DataFrame([{"init": i, "subset": "all", "auc": 5.0 + k + seed} for k, i in enumerate(("scratch", "ssl", "sap"))]
                 ).to_csv(rd.eval_table("froc"), index=False)


@pytest.fixture
def study_runs(tmp_path: Path) -> dict[int, Path]:
    rng = np.random.default_rng(0)
    shifts = {42: 0.2, 1: 0.1, 2: -0.05, 3: 0.15, 4: 0.08}
    runs = {}
    for seed, shift in shifts.items():
        runs[seed] = tmp_path / f"seed={seed}"
        _write_eval(runs[seed], seed, shift, rng=rng, oversized=1 if seed == 2 else 0)
    return runs


def test_sign_counts_and_pooled_test_match_hand_computation(study_runs):
    study = seed_study(study_runs, kind="training")
    assert list(study.runs["seed"]) == [42, 1, 2, 3, 4]
    row = study.signs[(study.signs["metric"] == "f2") & (study.signs["b"] == "scratch")].iloc[0]
    # per-run median differences: every seed but seed 2 (shift −0.05) puts SAP ahead
    assert (row["positive"], row["negative"], row["zero"], row["n_runs"]) == (4, 1, 0, 5)
    assert row["significant_positive"] == 4 and row["significant_negative"] == 0  # p 0.01 where shift > 0.05
    # pooled test: Wilcoxon of each patient's difference averaged over the five runs
    d = study.differences[(study.differences["metric"] == "f2") & (study.differences["b"] == "scratch")]
    per_patient = d.groupby("scan_id")["difference"].mean()
    assert row["pooled_n"] == N_PATIENTS == len(per_patient)
    assert row["pooled_p"] == pytest.approx(stats.wilcoxon(per_patient.to_numpy()).pvalue, rel=1e-12)
    assert row["pooled_median_difference"] == pytest.approx(float(per_patient.median()))


def test_medians_and_ranges_across_runs(study_runs):
    study = seed_study(study_runs, kind="training")
    per_run = study.per_run[(study.per_run["metric"] == "f2") & (study.per_run["init"] == "sap")]
    expected = [float(pd.read_csv(RunDir(d).eval_table("patients")).query("init == 'sap'")["f2"].median())
                for d in study_runs.values()]
    assert per_run["median"].tolist() == pytest.approx(expected)
    row = study.across[(study.across["metric"] == "f2") & (study.across["init"] == "sap")].iloc[0]
    assert (row["min"], row["max"], row["n_runs"]) == (pytest.approx(min(expected)), pytest.approx(max(expected)), 5)
    auc = study.across[(study.across["metric"] == "froc_auc") & (study.across["init"] == "sap")].iloc[0]
    assert (auc["min"], auc["max"]) == (7.0 + 1, 7.0 + 42)  # 5 + index 2 + seed
    text = seed_study_markdown(study, machine="test CPU")
    assert "5 training seeds" in text and "test CPU" in text and "| F2 (patient level) | sap vs scratch | 4 (4) | 1 (0) | 0 |" in text
    assert "seed 2: scratch 0/8, ssl 0/8, sap 1/8" in text  # the flagged-prediction counts per run
    holds, fails = verdicts(study)
    # SAP leads scratch on F2 in 4 of 5 runs (80 %) with a pooled p < 0.05: holds
    assert any(h.startswith("F2 (patient level), SAP vs scratch (4 of 5 runs, pooled p 0.0078)") for h in holds)
    assert any(f.startswith("FP per exam, SAP vs scratch (0 of 5 runs") for f in fails)  # equal FP: never ahead
    one_short = study.signs.assign(positive=study.signs["positive"] - 1)  # 3 of 5 runs: below 80 %
    assert not verdicts(dataclasses.replace(study, signs=one_short))[0]
    assert "**Holds**" in text and "**Does not hold**" in text
    # the same study with SAP and scratch swapped on F2: a small pooled p now favours scratch, and says so
    flipped = study.signs.copy()
    f2 = (flipped["metric"] == "f2") & (flipped["b"] == "scratch")
    flipped.loc[f2, ["positive", "negative"]] = flipped.loc[f2, ["negative", "positive"]].to_numpy()
    flipped.loc[f2, "pooled_median_difference"] *= -1
    holds, fails = verdicts(dataclasses.replace(study, signs=flipped))
    assert not any(h.startswith("F2 (patient level), SAP vs scratch") for h in holds)
    assert "F2 (patient level), SAP vs scratch (1 of 5 runs, pooled p 0.0078, scratch ahead)" in fails
    assert not any(f.startswith("F2 (patient level), SAP vs ssl") and f.endswith("ahead)") for f in fails)


def test_cohort_seeds_count_each_run_patient_once(study_runs):
    study = seed_study(study_runs, kind="cohort")
    row = study.signs[(study.signs["metric"] == "f2") & (study.signs["b"] == "scratch")].iloc[0]
    assert row["pooled_n"] == 5 * N_PATIENTS  # the same scan ids in other cohorts are other subjects
    d = study.differences[(study.differences["metric"] == "f2") & (study.differences["b"] == "scratch")]
    assert row["pooled_p"] == pytest.approx(stats.wilcoxon(d["difference"].to_numpy()).pvalue, rel=1e-12)


def test_unfinished_run_is_refused(study_runs, tmp_path):
    with pytest.raises(EvaluationError, match="notebook 05 did not finish"):
        seed_study({**study_runs, 7: tmp_path / "missing"})
    with pytest.raises(EvaluationError, match="at least 2"):
        seed_study({42: study_runs[42]})


def test_cli_aggregate_writes_tables_report_and_readme_block(study_runs, tmp_path, capsys):
    base = study_runs.pop(42)
    out = tmp_path / "study"
    for seed, run in study_runs.items():
        (out / "training").mkdir(parents=True, exist_ok=True)
        run.rename(out / "training" / f"seed={seed}")
    rd = RunDir(base)
    rd.config_yaml.write_text(yaml.safe_dump({"profile": "demo", "seed": 42, "synth": {"seed": 42}}))
    rd.versions_json.write_text(json.dumps({"machine": {"cpu_model": "Test CPU", "cpu_isa": "AVX2",
                                                        "cpu_capability": "AVX2", "torch_threads": 2}}))
    assert main(["seeds", "--aggregate", "--run-dir", str(base), "--out", str(out), "--cohort-seeds"]) == 0
    printed = capsys.readouterr().out
    assert "5 training seeds" in printed and "Test CPU (AVX2; torch kernels AVX2, 2 threads)" in printed
    for name in ("seed_study.md", "report.html", "training_signs.csv", "training_differences.csv"):
        assert (out / name).is_file()
    page = (out / "report.html").read_text()
    assert "plotly-gz" in page and "Per-seed paired differences (training seeds)" in page and "<b>Holds</b>" in page
    assert len(page) < 2_000_000  # plotly.js embedded once, gzipped
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- seeds:start -->\nold\n<!-- seeds:end -->\n")
    from sapkit.pipeline.readme_block import replace_block

    replace_block(readme, (out / "seed_study.md").read_text(), marker="seeds")
    assert "\nold\n" not in readme.read_text() and "5 training seeds" in readme.read_text()


def test_two_agreeing_runs_do_not_make_a_claim_hold(study_runs):
    two = {s: study_runs[s] for s in (42, 1)}  # SAP ahead in both, by 0.2 and 0.1
    holds, fails = verdicts(seed_study(two))
    assert not holds and any(f.startswith("F2 (patient level), SAP vs scratch (2 of 2 runs") for f in fails)
