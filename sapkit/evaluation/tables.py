"""Results tables: Table 1 in the paper's layout beside the paper's numbers, comparisons, skeleton Dice.

Table 1 (journal version, docs/method.md §7) reports medians over the test patients with a bootstrap 95 %
CI and the IQR. Patient-level rows take one value per patient; the two "detected lesions" rows
(Dice, NSD) take one value per detected lesion, pooled over patients (they are compared with the
Mann–Whitney U test for that reason); FROC-AUC and the tumour-burden ICC are single cohort-level
numbers (no CI). The paper's "Baseline" is the kit's ``scratch`` initialisation.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from sapkit.errors import EvaluationError
from sapkit.evaluation.statistics import bonferroni, mann_whitney_u, median_ci, tumour_burden_icc, wilcoxon_signed_rank

__all__ = [
    "TABLE1_ROWS",
    "PAPER_TABLE1",
    "PAPER_SKELETON_DICE",
    "table1_values",
    "table1",
    "table1_markdown",
    "compare_inits",
    "skeleton_dice_table",
    "flagged_scans",
    "flags_note",
]

#: (key, label, level): level "patient" (one value per patient, from patients.csv),
#: "lesion" (detected lesions, from lesions.csv) or "cohort" (one number per init).
TABLE1_ROWS: tuple[tuple[str, str, str], ...] = (
    ("sensitivity", "sensitivity (all lesions)", "patient"),
    ("precision", "precision", "patient"),
    ("fp", "FP per exam", "patient"),
    ("f2", "F2", "patient"),
    ("sensitivity_large", "sensitivity ≥ 1 mL", "patient"),
    ("dice_detected_lesion", "Dice, detected lesions", "lesion"),
    ("nsd_detected_lesion", "NSD, detected lesions", "lesion"),
    ("dice_mean", "Dice, per-patient mean", "patient"),
    ("global_dice", "global Dice", "patient"),
    ("froc_auc", "FROC-AUC (≤ 15 FP/exam)", "cohort"),
    ("burden_icc", "tumour-burden ICC(2,1)", "cohort"),
)

#: Journal Table 1 medians (33 test patients); keys are the kit's init names.
PAPER_TABLE1: Mapping[str, Mapping[str, float]] = {
    "sensitivity": {"scratch": 0.273, "ssl": 0.427, "sap": 0.714},
    "precision": {"scratch": 0.143, "ssl": 0.200, "sap": 0.167},
    "fp": {"scratch": 13, "ssl": 9, "sap": 20},
    "f2": {"scratch": 0.259, "ssl": 0.312, "sap": 0.448},
    "sensitivity_large": {"scratch": 0.875, "ssl": 1.000, "sap": 1.000},
    "dice_detected_lesion": {"scratch": 0.560, "ssl": 0.622, "sap": 0.662},
    "nsd_detected_lesion": {"scratch": 0.665, "ssl": 0.691, "sap": 0.775},
    "dice_mean": {"scratch": 0.131, "ssl": 0.241, "sap": 0.442},
    "global_dice": {"scratch": 0.212, "ssl": 0.333, "sap": 0.463},
    "froc_auc": {"scratch": 2.96, "ssl": 4.82, "sap": 7.10},
    "burden_icc": {"scratch": 0.309, "ssl": 0.608, "sap": 0.649},
}

#: Skeleton model Dice reported in the paper, by SAP class name.
PAPER_SKELETON_DICE: Mapping[str, float] = {
    "cervical spine": 0.90, "thoracic spine": 0.94, "lumbar spine": 0.93, "femur": 0.90, "pelvis": 0.80,
    "humerus": 0.67, "scapulae": 0.70, "clavicles": 0.83, "sternum": 0.85, "whole skeleton": 0.90,
}

_PATIENT_COLS = ("init", "scan_id")
_LESION_COLS = ("init", "scan_id", "detected", "dice", "nsd")


def _require(df: pd.DataFrame, cols: Sequence[str], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise EvaluationError(f"{what} table lacks column(s) {missing}; build it with sapkit.evaluation.cohort")


def _order(inits: Sequence[str]) -> list[str]:
    known = [i for i in ("scratch", "ssl", "sap") if i in inits]
    return known + sorted(i for i in inits if i not in known)


def table1_values(patients: pd.DataFrame, lesions: pd.DataFrame, *, froc_auc: Mapping[str, float] | None = None,
                  n_resamples: int = 1000, seed: int = 42) -> pd.DataFrame:
    """Numbers behind Table 1, one row per (metric, init).

    Parameters
    ----------
    patients : DataFrame
        ``patients.csv`` rows (column ``init`` plus the :class:`~sapkit.metrics.PatientSummary`
        fields) of the test patients.
    lesions : DataFrame
        ``lesions.csv`` rows (``init``, ``scan_id``, ``detected``, ``dice``, ``nsd``).
    froc_auc : mapping init → float, optional
        FROC-AUC up to 15 FP/exam per init (NaN row when absent).
    n_resamples, seed : int
        Bootstrap settings (1000, 42).

    Returns
    -------
    DataFrame
        Columns ``metric, label, level, init, median, ci_low, ci_high, q1, q3, n, paper``.
    """
    _require(patients, _PATIENT_COLS, "patients")
    _require(lesions, _LESION_COLS, "lesions")
    rows = []
    inits = _order(sorted(set(patients["init"].astype(str))))
    for key, label, level in TABLE1_ROWS:
        for init in inits:
            p = patients[patients["init"].astype(str) == init]
            paper = PAPER_TABLE1.get(key, {}).get(init, float("nan"))
            base = {"metric": key, "label": label, "level": level, "init": init, "paper": paper}
            if level == "cohort":
                if key == "froc_auc":
                    value = float((froc_auc or {}).get(init, float("nan")))
                else:
                    value = tumour_burden_icc(p["gt_volume_ml"], p["pred_volume_ml"])
                rows.append({**base, "median": value, "ci_low": np.nan, "ci_high": np.nan, "q1": np.nan,
                             "q3": np.nan, "n": int(len(p))})
                continue
            if level == "lesion":
                les = lesions[(lesions["init"].astype(str) == init) & lesions["detected"].astype(bool)]
                values = les["dice" if key.startswith("dice") else "nsd"].to_numpy(float)
            else:
                values = p[key].to_numpy(float)
            m = median_ci(values, n_resamples=n_resamples, seed=seed)
            rows.append({**base, "median": m.median, "ci_low": m.ci_low, "ci_high": m.ci_high, "q1": m.q1,
                         "q3": m.q3, "n": m.n})
    cols = ["metric", "label", "level", "init", "median", "ci_low", "ci_high", "q1", "q3", "n", "paper"]
    return pd.DataFrame(rows, columns=cols)


def _fmt(v: float, digits: int) -> str:
    return "—" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"


def table1(values: pd.DataFrame, *, digits: int = 3) -> pd.DataFrame:
    """Table 1 in the paper's layout: one row per metric; per init ``median [95 % CI]``, ``IQR``, ``paper``.

    Parameters
    ----------
    values : DataFrame
        Output of :func:`table1_values`.

    Returns
    -------
    DataFrame
        String cells, columns ``metric`` then ``<init> median [95% CI]``, ``<init> IQR``,
        ``<init> paper`` and ``<init> n`` for each init. ``n`` is how many values each median
        covers: patients with a defined value (e.g. F2 is NaN for a patient without GT lesions and
        without FP, ``docs/metrics.md`` §6), detected lesions for lesion-level rows, exams for
        cohort-level rows.
    """
    _require(values, ("metric", "label", "init", "median", "ci_low", "ci_high", "q1", "q3", "paper"), "Table 1 values")
    inits = _order(list(dict.fromkeys(values["init"].astype(str))))
    out = []
    for key, label, _ in TABLE1_ROWS:
        part = values[values["metric"] == key]
        if part.empty:
            continue
        row = {"metric": label}
        for init in inits:
            r = part[part["init"] == init]
            if r.empty:
                continue
            r = r.iloc[0]
            cell = _fmt(r["median"], digits)
            if np.isfinite(r["ci_low"]):
                cell += f" [{_fmt(r['ci_low'], digits)}, {_fmt(r['ci_high'], digits)}]"
            row[f"{init} median [95% CI]"] = cell
            row[f"{init} IQR"] = (f"{_fmt(r['q1'], digits)}–{_fmt(r['q3'], digits)}"
                                  if np.isfinite(r["q1"]) else "—")
            row[f"{init} paper"] = _fmt(r["paper"], {"fp": 0, "froc_auc": 2}.get(key, 3))
            if "n" in r.index and pd.notna(r["n"]):
                row[f"{init} n"] = int(r["n"])  # values behind the median (NaN patients left out)
        out.append(row)
    return pd.DataFrame(out)


def flagged_scans(patients: pd.DataFrame) -> dict[str, tuple[int, int]]:
    """Per init, (scans with a flagged predicted component, scans): a component credited with ≥ 2
    lesions or larger than ``eval.oversize_ml`` (docs/metrics.md §15). Tables without the flag
    columns (older runs) count 0."""
    out = {}
    for init in _order(sorted(set(patients["init"].astype(str)))):
        p = patients[patients["init"].astype(str) == init]
        flagged = np.zeros(len(p), bool)
        for col in ("n_merging", "n_oversized"):
            if col in p.columns:
                flagged |= p[col].fillna(0).to_numpy() > 0
        out[init] = (int(flagged.sum()), int(len(p)))
    return out


def flags_note(patients: pd.DataFrame, oversize_ml: float) -> str:
    """One sentence for Table 1's note: how many scans per init hold a flagged prediction."""
    counts = flagged_scans(patients)
    return (f"Flagged predictions (a component joining ≥ 2 lesions or > {oversize_ml:g} mL, docs/metrics.md §15): "
            + ", ".join(f"{i} {k} of {n} scans" for i, (k, n) in counts.items()) + ".")


def table1_markdown(table: pd.DataFrame, *, note: str = "") -> str:
    """Markdown rendering of :func:`table1` (a pipe table), with an optional note line below."""
    header = "| " + " | ".join(table.columns) + " |"
    sep = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    text = "\n".join([header, sep, *body]) + "\n"
    return text + (f"\n{note}\n" if note else "")


def compare_inits(patients: pd.DataFrame, lesions: pd.DataFrame, *, reference: str = "sap",
                  metrics: Sequence[str] = ("sensitivity", "precision", "fp", "f2", "dice_mean", "global_dice",
                                            "dice_detected_lesion", "nsd_detected_lesion")) -> pd.DataFrame:
    """Reference init against every other init, per metric, with Bonferroni-corrected p-values.

    Patient-level metrics: Wilcoxon signed-rank paired by ``scan_id``. Lesion-level metrics
    (``*_detected_lesion``): Mann–Whitney U over detected lesions. The Bonferroni factor is the
    number of comparisons of that metric (the number of other inits).

    Returns
    -------
    DataFrame
        Columns ``metric, a, b, test, statistic, p_value, p_bonferroni, n``.
    """
    _require(patients, _PATIENT_COLS, "patients")
    _require(lesions, _LESION_COLS, "lesions")
    inits = _order(sorted(set(patients["init"].astype(str))))
    others = [i for i in inits if i != reference]
    rows = []
    if reference not in inits:
        return pd.DataFrame(columns=["metric", "a", "b", "test", "statistic", "p_value", "p_bonferroni", "n"])
    for metric in metrics:
        block = []
        for other in others:
            if metric.endswith("_detected_lesion"):
                col = "dice" if metric.startswith("dice") else "nsd"
                sel = lambda i: lesions[(lesions["init"] == i) & lesions["detected"].astype(bool)][col]  # noqa: E731
                res = mann_whitney_u(sel(reference), sel(other))
            else:
                wide = patients.pivot_table(index="scan_id", columns="init", values=metric, aggfunc="first")
                if reference not in wide or other not in wide:
                    continue
                res = wilcoxon_signed_rank(wide[reference].to_numpy(float), wide[other].to_numpy(float))
            block.append({"metric": metric, "a": reference, "b": other, "test": res.test,
                          "statistic": res.statistic, "p_value": res.p_value, "n": res.n})
        adjusted = bonferroni([b["p_value"] for b in block]) if block else []
        for b, p in zip(block, adjusted):
            rows.append({**b, "p_bonferroni": float(p)})
    cols = ["metric", "a", "b", "test", "statistic", "p_value", "p_bonferroni", "n"]
    return pd.DataFrame(rows, columns=cols)


def skeleton_dice_table(per_scan: pd.DataFrame, *, digits: int = 3) -> pd.DataFrame:
    """Per-class skeleton Dice (median and IQR over scans) beside the paper's values.

    Parameters
    ----------
    per_scan : DataFrame
        Long table with columns ``region`` (SAP class name, or ``"whole skeleton"``) and
        ``dice``; one row per scan and region.

    Returns
    -------
    DataFrame
        Columns ``region, n, median, q1, q3, paper`` in the paper's order (unknown regions last).
    """
    _require(per_scan, ("region", "dice"), "per-scan skeleton Dice")
    rows = []
    regions = list(PAPER_SKELETON_DICE) + sorted(set(per_scan["region"]) - set(PAPER_SKELETON_DICE))
    for region in regions:
        values = per_scan.loc[per_scan["region"] == region, "dice"].to_numpy(float)
        values = values[~np.isnan(values)]
        if values.size == 0 and region not in set(per_scan["region"]):
            continue
        q1, q3 = (np.percentile(values, [25, 75]) if values.size else (np.nan, np.nan))
        rows.append({"region": region, "n": int(values.size),
                     "median": round(float(np.median(values)), digits) if values.size else np.nan,
                     "q1": round(float(q1), digits) if values.size else np.nan,
                     "q3": round(float(q3), digits) if values.size else np.nan,
                     "paper": PAPER_SKELETON_DICE.get(region, np.nan)})
    return pd.DataFrame(rows, columns=["region", "n", "median", "q1", "q3", "paper"])
