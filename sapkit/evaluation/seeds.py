"""Seed studies: which parts of a result survive another training draw (docs/metrics.md §16).

A seed study is a set of finished run folders that differ only in a seed: the training seed
(same cohort, splits and pretrained models; ``sapkit seeds`` reruns notebooks 04–05) or the
cohort seed (``synth.seed``: a new synthetic cohort, the whole series). For each run this module
reads ``eval/patients.csv``, ``eval/comparisons.csv`` and ``eval/froc.csv`` and reports

- per metric and init, the median over patients of every run, and their median and range over runs;
- per comparison (SAP vs scratch, SAP vs SSL) and metric, how many runs give a positive, negative
  or zero median patient difference, and how many of those are significant (Bonferroni p < 0.05);
- one **pooled test** per comparison and metric: the Wilcoxon signed-rank test of the per-patient
  differences averaged over the runs in which the patient was tested (a summary-measure analysis:
  the patient is the independent unit, the seeds are repeated draws of the same measurement); in a
  cohort-seed study every run has its own patients, and each (run, patient) counts once.

Patient-level values only (one value per test patient): the pooled test needs a pairing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from sapkit.errors import EvaluationError
from sapkit.evaluation.statistics import wilcoxon_signed_rank
from sapkit.evaluation.tables import flagged_scans
from sapkit.io.run_paths import RunDir

__all__ = ["SEED_METRICS", "HOLD_SHARE", "SeedStudy", "load_seed_runs", "seed_study", "seed_study_markdown", "verdicts"]

#: (key in patients.csv, label): the patient-level rows of Table 1 and the paired tests.
SEED_METRICS: tuple[tuple[str, str], ...] = (
    ("f2", "F2 (patient level)"),
    ("global_dice", "global Dice (all lesions as one foreground)"),
    ("dice_mean", "per-patient mean lesion Dice (missed = 0)"),
    ("sensitivity", "sensitivity"),
    ("precision", "precision"),
    ("fp", "FP per exam"),
)
_COMPARISONS = (("sap", "scratch"), ("sap", "ssl"))
_ALPHA = 0.05


@dataclass(frozen=True)
class SeedStudy:
    """The aggregated seed study.

    Attributes
    ----------
    kind : str
        ``"training"`` or ``"cohort"``: what the seed changed.
    runs : DataFrame
        One row per run: ``run, seed, n_patients, flagged_<init>`` and ``machine``.
    per_run : DataFrame
        ``run, seed, metric, init, median`` (median over that run's test patients; ``froc_auc`` is the
        run's FROC area up to 15 FP/exam).
    across : DataFrame
        ``metric, label, init, median, min, max, n_runs``: the per-run medians summarised over runs.
    signs : DataFrame
        ``metric, label, a, b, n_runs, positive, negative, zero, significant_positive,
        significant_negative, pooled_n, pooled_median_difference, pooled_p``.
    differences : DataFrame
        ``run, seed, scan_id, metric, a, b, difference``: every per-patient paired difference.
    """

    kind: str
    runs: pd.DataFrame
    per_run: pd.DataFrame
    across: pd.DataFrame
    signs: pd.DataFrame
    differences: pd.DataFrame


def load_seed_runs(run_dirs: Mapping[int, str | Path]) -> dict[int, dict[str, pd.DataFrame]]:
    """Read the evaluation tables of every run (seed → folder); refuses a run that did not finish."""
    out = {}
    for seed, folder in run_dirs.items():
        rd = RunDir(folder)
        patients = rd.eval_table("patients")
        if not patients.is_file():
            raise EvaluationError(f"seed {seed}: {patients} does not exist; its notebook 05 did not finish "
                                  f"(rerun `sapkit seeds` to complete it)")
        tables = {"patients": pd.read_csv(patients)}
        for name in ("comparisons", "froc"):
            path = rd.eval_table(name)
            tables[name] = pd.read_csv(path) if path.is_file() else pd.DataFrame()
        out[int(seed)] = tables
    return out


def _froc_auc(froc: pd.DataFrame) -> dict[str, float]:
    if froc.empty or "auc" not in froc.columns:
        return {}
    part = froc[froc["subset"] == "all"] if "subset" in froc.columns else froc
    return {str(i): float(g["auc"].iloc[0]) for i, g in part.groupby("init")}


def seed_study(run_dirs: Mapping[int, str | Path], *, kind: str = "training",
               metrics: Sequence[tuple[str, str]] = SEED_METRICS) -> SeedStudy:
    """Aggregate finished runs that differ only in one seed (seed → run folder); see the module docstring."""
    if kind not in ("training", "cohort"):
        raise EvaluationError(f"kind must be 'training' or 'cohort', got {kind!r}")
    if len(run_dirs) < 2:
        raise EvaluationError(f"a seed study needs at least 2 finished runs, got {len(run_dirs)}")
    tables = load_seed_runs(run_dirs)
    run_rows, per_run, diffs, comp_rows = [], [], [], []
    for seed, t in tables.items():
        pat = t["patients"]
        name = Path(run_dirs[seed]).name
        flags = flagged_scans(pat)
        run_rows.append({"run": name, "seed": seed, "n_patients": int(pat["scan_id"].nunique()),
                         **{f"flagged_{i}": f"{k}/{n}" for i, (k, n) in flags.items()}})
        for key, _ in metrics:
            for init, part in pat.groupby("init"):
                per_run.append({"run": name, "seed": seed, "metric": key, "init": str(init),
                                "median": float(part[key].median())})
        for init, auc in _froc_auc(t["froc"]).items():
            per_run.append({"run": name, "seed": seed, "metric": "froc_auc", "init": init, "median": auc})
        for key, _ in metrics:
            wide = pat.pivot_table(index="scan_id", columns="init", values=key, aggfunc="first")
            for a, b in _COMPARISONS:
                if a not in wide or b not in wide:
                    continue
                d = (wide[a] - wide[b]).dropna()
                diffs += [{"run": name, "seed": seed, "scan_id": s, "metric": key, "a": a, "b": b, "difference": float(v)}
                          for s, v in d.items()]
                comp = t["comparisons"]
                p_bonf = float("nan")
                if not comp.empty:
                    hit = comp[(comp["metric"] == key) & (comp["a"] == a) & (comp["b"] == b)]
                    p_bonf = float(hit["p_bonferroni"].iloc[0]) if len(hit) else float("nan")
                comp_rows.append({"seed": seed, "metric": key, "a": a, "b": b,
                                  "median_difference": float(d.median()) if len(d) else float("nan"),
                                  "p_bonferroni": p_bonf})
    per_run_df = pd.DataFrame(per_run, columns=["run", "seed", "metric", "init", "median"])
    diff_df = pd.DataFrame(diffs, columns=["run", "seed", "scan_id", "metric", "a", "b", "difference"])
    labels = dict(metrics) | {"froc_auc": "FROC-AUC (≤ 15 FP/exam)"}
    across = (per_run_df.groupby(["metric", "init"], sort=False)["median"]
              .agg(median="median", min="min", max="max", n_runs="count").reset_index())
    across.insert(1, "label", across["metric"].map(labels))
    return SeedStudy(kind, pd.DataFrame(run_rows), per_run_df, across,
                     _sign_table(pd.DataFrame(comp_rows), diff_df, labels, kind), diff_df)


def _sign_table(comp: pd.DataFrame, diffs: pd.DataFrame, labels: Mapping[str, str], kind: str) -> pd.DataFrame:
    """Sign counts over runs and the pooled test over patients, per (metric, comparison).

    Training seeds test the same patients in every run: a patient's differences are averaged over
    runs. Cohort seeds test other patients in every run (the same scan ids name other synthetic
    subjects): each (run, patient) is its own unit."""
    unit = ["scan_id"] if kind == "training" else ["seed", "scan_id"]
    rows = []
    if comp.empty:
        return pd.DataFrame(rows)
    for (metric, a, b), part in comp.groupby(["metric", "a", "b"], sort=False):
        md = part["median_difference"].to_numpy(float)
        sig = part["p_bonferroni"].to_numpy(float) < _ALPHA
        d = diffs[(diffs["metric"] == metric) & (diffs["a"] == a) & (diffs["b"] == b)]
        per_patient = d.groupby(unit)["difference"].mean()
        test = wilcoxon_signed_rank(per_patient.to_numpy(float), np.zeros(len(per_patient)))
        rows.append({
            "metric": metric, "label": labels.get(metric, metric), "a": a, "b": b, "n_runs": int(len(part)),
            "positive": int((md > 0).sum()), "negative": int((md < 0).sum()), "zero": int((md == 0).sum()),
            "significant_positive": int((sig & (md > 0)).sum()), "significant_negative": int((sig & (md < 0)).sum()),
            "pooled_n": int(test.n), "pooled_median_difference": float(per_patient.median()) if len(per_patient) else float("nan"),
            "pooled_p": test.p_value,
        })
    return pd.DataFrame(rows)


#: Share of runs in which SAP must lead (median patient difference in its favour) for a claim to hold.
HOLD_SHARE = 0.8
#: Fewer runs than this never make a claim hold (two agreeing runs are two draws, not a distribution).
MIN_RUNS = 3
_LOWER_IS_BETTER = {"fp"}


def verdicts(study: SeedStudy) -> tuple[list[str], list[str]]:
    """Which SAP comparisons hold across the runs and which do not, as short phrases.

    A comparison holds when there are at least :data:`MIN_RUNS` runs, SAP is ahead (higher, or
    lower for FP per exam) in at least :data:`HOLD_SHARE` of them and the pooled test (§16) gives
    p < 0.05 in SAP's favour. A phrase whose pooled test gives p < 0.05 in the other init's favour
    ends with "<init> ahead", so a small p in the "does not hold" list is never read as SAP's.
    """
    holds, fails = [], []
    for r in study.signs.itertuples():
        lower = r.metric in _LOWER_IS_BETTER
        ahead = r.negative if lower else r.positive
        sap_side = r.pooled_median_difference < 0 if lower else r.pooled_median_difference > 0
        other_side = r.pooled_median_difference > 0 if lower else r.pooled_median_difference < 0
        against = f", {r.b} ahead" if r.pooled_p < _ALPHA and other_side else ""
        text = f"{r.label}, SAP vs {r.b} ({ahead} of {r.n_runs} runs, pooled p {r.pooled_p:.2g}{against})"
        ok = r.n_runs >= MIN_RUNS and ahead >= HOLD_SHARE * r.n_runs and r.pooled_p < _ALPHA and sap_side
        (holds if ok else fails).append(text)
    return holds, fails


def _range(r: pd.Series, digits: int) -> str:
    return f"{r['median']:.{digits}f} ({r['min']:.{digits}f}–{r['max']:.{digits}f})"


def seed_study_markdown(study: SeedStudy, *, machine: str = "") -> str:
    """Markdown for the README and the report: medians with ranges over runs, sign counts, pooled tests."""
    seeds = ", ".join(str(s) for s in study.runs["seed"])
    what = ("training seeds (same cohort, splits and pretrained models; notebooks 04–05 rerun)"
            if study.kind == "training" else "cohort seeds (a new synthetic cohort each; the whole series)")
    lines = [f"**{len(study.runs)} {what}: {seeds}**" + (f" — computed on {machine}" if machine else "") + ".", "",
             "Median over test patients per run, then the median and range (min–max) of those over runs:", "",
             "| metric | scratch | ssl | sap |", "|---|---|---|---|"]
    for metric in dict.fromkeys(study.across["metric"]):
        part = study.across[study.across["metric"] == metric].set_index("init")
        digits = 1 if metric in ("fp", "froc_auc") else 3
        cells = [_range(part.loc[i], digits) if i in part.index else "—" for i in ("scratch", "ssl", "sap")]
        lines.append(f"| {part['label'].iloc[0]} | " + " | ".join(cells) + " |")
    lines += ["", "SAP against each other init: runs whose median patient difference is positive / negative / zero "
              "(significant after Bonferroni, p < 0.05, in brackets), and the pooled test (Wilcoxon signed-rank of "
              "each patient's difference averaged over runs, docs/metrics.md §16):", "",
              "| metric | comparison | runs + (sig.) | runs − (sig.) | runs 0 | pooled n | pooled median difference | pooled p |",
              "|---|---|---|---|---|---|---|---|"]
    for r in study.signs.itertuples():
        lines.append(f"| {r.label} | {r.a} vs {r.b} | {r.positive} ({r.significant_positive}) | "
                     f"{r.negative} ({r.significant_negative}) | {r.zero} | {r.pooled_n} | "
                     f"{r.pooled_median_difference:+.3f} | {r.pooled_p:.3g} |")
    holds, fails = verdicts(study)
    lines += ["", f"**Holds** (≥ {MIN_RUNS} runs, SAP ahead in ≥ {HOLD_SHARE:.0%} of them, pooled p < {_ALPHA:g}): "
              + ("; ".join(holds) if holds else "nothing") + ".",
              "**Does not hold**: " + ("; ".join(fails) if fails else "nothing") + "."]
    flag_cols = [c for c in study.runs.columns if c.startswith("flagged_")]
    if flag_cols:
        lines += ["", "Scans with a flagged prediction (docs/metrics.md §15) per run: " + "; ".join(
            f"seed {r['seed']}: " + ", ".join(f"{c[8:]} {r[c]}" for c in flag_cols) for _, r in study.runs.iterrows()) + "."]
    return "\n".join(lines) + "\n"
