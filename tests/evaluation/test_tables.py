"""sapkit.evaluation.tables: Table 1 layout and numbers, comparisons against scipy, skeleton Dice table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from sapkit.evaluation.tables import (
    PAPER_TABLE1,
    TABLE1_ROWS,
    compare_inits,
    skeleton_dice_table,
    table1,
    table1_markdown,
    table1_values,
)
from sapkit.evaluation.statistics import median_ci


def _tables(seed=0, n=12):
    rng = np.random.default_rng(seed)
    rows, les = [], []
    for init, shift in (("scratch", 0.0), ("ssl", 0.1), ("sap", 0.3)):
        for i in range(n):
            f2 = float(np.clip(rng.normal(0.3 + shift, 0.1), 0, 1))
            rows.append({"init": init, "scan_id": f"p{i}", "sensitivity": f2, "precision": 0.5, "fp": i % 4,
                         "f2": f2, "sensitivity_large": np.nan if i % 3 == 0 else 1.0, "dice_mean": f2 / 2,
                         "global_dice": f2 / 1.5, "gt_volume_ml": 1.0 + i, "pred_volume_ml": 1.0 + i + rng.normal(0, 0.5)})
            for j in range(3):
                les.append({"init": init, "scan_id": f"p{i}", "detected": j < 2,
                            "dice": float(np.clip(rng.normal(0.5 + shift, 0.1), 0, 1)), "nsd": 0.7})
    return pd.DataFrame(rows), pd.DataFrame(les)


def test_table1_values_numbers():
    patients, lesions = _tables()
    v = table1_values(patients, lesions, froc_auc={"sap": 7.0}, n_resamples=1000, seed=42)
    assert len(v) == len(TABLE1_ROWS) * 3
    row = v.query("metric == 'f2' and init == 'sap'").iloc[0]
    expected = median_ci(patients.query("init == 'sap'")["f2"], n_resamples=1000, seed=42)
    assert (row["median"], row["ci_low"], row["ci_high"], row["q1"], row["q3"]) == pytest.approx(
        (expected.median, expected.ci_low, expected.ci_high, expected.q1, expected.q3))
    assert row["paper"] == PAPER_TABLE1["f2"]["sap"]
    large = v.query("metric == 'sensitivity_large' and init == 'sap'").iloc[0]
    assert large["n"] == 8  # patients without large lesions (NaN) are left out
    det = v.query("metric == 'dice_detected_lesion' and init == 'ssl'").iloc[0]
    assert det["n"] == 24  # detected lesions pooled over patients
    assert np.isnan(v.query("metric == 'froc_auc' and init == 'ssl'")["median"].item())
    icc = v.query("metric == 'burden_icc' and init == 'sap'")["median"].item()
    assert 0.8 < icc <= 1.0


def test_table1_layout_and_markdown():
    patients, lesions = _tables()
    t = table1(table1_values(patients, lesions, froc_auc={"scratch": 2.0, "ssl": 3.0, "sap": 7.1}))
    assert t.columns[:4].tolist() == ["metric", "scratch median [95% CI]", "scratch IQR", "scratch paper"]
    assert t.columns[4] == "scratch n"
    assert t.loc[t.metric == "sensitivity ≥ 1 mL", "sap n"].tolist() == [8]  # NaN patients left out
    cell = t.loc[t.metric == "F2", "sap median [95% CI]"].item()
    assert cell.count("[") == 1 and cell.endswith("]")
    assert t.loc[t.metric == "FP per exam", "scratch paper"].item() == "13"
    md = table1_markdown(t, note="note")
    assert md.splitlines()[0].startswith("| metric | scratch median [95% CI]") and md.rstrip().endswith("note")
    assert len(md.splitlines()) == 2 + len(TABLE1_ROWS) + 2


def test_compare_inits_against_scipy():
    patients, lesions = _tables(seed=1)
    comp = compare_inits(patients, lesions, reference="sap")
    f2 = comp[(comp.metric == "f2") & (comp.b == "scratch")].iloc[0]
    a = patients.query("init == 'sap'").sort_values("scan_id")["f2"].to_numpy()
    b = patients.query("init == 'scratch'").sort_values("scan_id")["f2"].to_numpy()
    p = sps.wilcoxon(a, b).pvalue
    assert f2["p_value"] == pytest.approx(p) and f2["p_bonferroni"] == pytest.approx(min(1.0, 2 * p))
    d = comp[(comp.metric == "dice_detected_lesion") & (comp.b == "ssl")].iloc[0]
    la = lesions.query("init == 'sap' and detected")["dice"]
    lb = lesions.query("init == 'ssl' and detected")["dice"]
    assert d["test"] == "mann-whitney" and d["p_value"] == pytest.approx(sps.mannwhitneyu(la, lb).pvalue)


def test_skeleton_dice_table_beside_paper():
    per_scan = pd.DataFrame({"region": ["pelvis", "pelvis", "pelvis", "whole skeleton", "ribs"],
                             "dice": [0.7, 0.8, 0.9, 0.85, np.nan]})
    t = skeleton_dice_table(per_scan)
    pel = t[t.region == "pelvis"].iloc[0]
    assert (pel["n"], pel["median"], pel["q1"], pel["q3"], pel["paper"]) == (3, 0.8, 0.75, 0.85, 0.80)
    assert t[t.region == "whole skeleton"]["paper"].item() == 0.90
    assert t.region.tolist() == ["pelvis", "whole skeleton", "ribs"]
