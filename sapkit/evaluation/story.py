"""The text a run tells about itself: which init led on which metric, by how much, how sure, and the paper.

Nothing here is typed in advance: the closing cells of notebooks 02–05 and the headline of
``report.html`` are made from the run folder (``eval/patients.csv``, ``eval/comparisons.csv``, the
models' ``log.csv``), so they change when the outcome changes.

- :func:`metric_leads`: per key metric, the init with the best median over the test patients, the
  runner-up, the median of the paired per-patient differences and the Wilcoxon p-value
  (``comparisons.csv`` when it holds the pair, Bonferroni-corrected there; else computed here,
  uncorrected), and whether the paper's Table 1 had the same leader.
- :func:`run_story`: markdown for a notebook's closing cell; :func:`run_headline`: one sentence.
- :func:`paired_differences`: median over patients of (a − b), shared with the README block and the report;
  :func:`comparisons_table`: the paired tests in plain words with that difference (the report's table).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from sapkit.evaluation.statistics import wilcoxon_signed_rank
from sapkit.evaluation.tables import PAPER_TABLE1
from sapkit.io.run_paths import RunDir
from sapkit.training.plateau import stuck_models

__all__ = ["METRIC_LABELS", "STORY_METRICS", "INIT_LABELS", "Lead", "paired_differences", "metric_leads",
           "outcome_markdown", "learning_story", "run_story", "run_headline", "comparisons_table"]

#: Plain-language names of the evaluation metrics (tables and text), by column name.
METRIC_LABELS: Mapping[str, str] = {
    "f2": "F2 (patient level)",
    "dice_mean": "mean lesion Dice per patient (missed lesions = 0)",
    "global_dice": "global Dice per patient (all lesions as one foreground)",
    "fp": "false positives per exam",
    "sensitivity": "sensitivity (all lesions)",
    "precision": "precision",
    "dice_detected_lesion": "Dice of detected lesions",
    "nsd_detected_lesion": "NSD of detected lesions",
}
#: The metrics the story speaks about, most important first.
STORY_METRICS: tuple[str, ...] = ("f2", "dice_mean", "global_dice", "fp")
_LOWER_IS_BETTER = frozenset({"fp"})
_COUNTS = frozenset({"fp"})
_SHORT = {"f2": "F2", "dice_mean": "mean lesion Dice", "global_dice": "global Dice", "fp": "false positives per exam"}
#: How the text names the initialisations.
INIT_LABELS: Mapping[str, str] = {"scratch": "scratch", "ssl": "SSL", "sap": "SAP"}
_ALPHA = 0.05


def _name(init: str) -> str:
    return INIT_LABELS.get(init, init)


def _names(inits: Sequence[str]) -> str:
    """``scratch``, ``scratch and SSL``, ``SSL, scratch and SAP``."""
    names = [_name(i) for i in inits]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _num(v: float, metric: str = "") -> str:
    """Three decimals; counts (false positives) with one."""
    if v is None or not math.isfinite(v):
        return "n/a"
    return f"{v:.1f}" if metric in _COUNTS or abs(v) >= 10 else f"{v:.3f}"


def _diff(v: float, metric: str) -> str:
    return "n/a" if not math.isfinite(v) else (f"{v:+.1f}" if metric in _COUNTS else f"{v:+.3f}")


def _p(p: float) -> str:
    return "n/a" if p is None or not math.isfinite(p) else (f"{p:.2g}" if p < 0.001 else f"{p:.3f}")


def paired_differences(patients: pd.DataFrame, metrics: Sequence[str] = STORY_METRICS) -> dict[tuple[str, str, str], float]:
    """Median over patients of (init a − init b), per metric and ordered pair of inits (pairs by ``scan_id``)."""
    out: dict[tuple[str, str, str], float] = {}
    for metric in metrics:
        if metric not in patients.columns:
            continue
        wide = patients.pivot_table(index="scan_id", columns="init", values=metric, aggfunc="first")
        for a in wide.columns:
            for b in wide.columns:
                if a != b:
                    d = (wide[a] - wide[b]).dropna()
                    out[(metric, str(a), str(b))] = float(d.median()) if len(d) else float("nan")
    return out


@dataclass(frozen=True)
class Lead:
    """Who led on one metric.

    Attributes
    ----------
    metric : str
        Column of ``patients.csv`` (``f2``, ``dice_mean`` …).
    medians : dict init → float
        Median over test patients, best first.
    leader, runner_up : str
    difference : float
        Median over patients of (leader − runner-up).
    p_value, p_bonferroni : float
        Paired Wilcoxon p of leader vs runner-up; ``p_bonferroni`` NaN when computed here.
    n : int
        Patients in the test.
    paper_leader : str or None
        The init with the best value in the paper's Table 1.
    """

    metric: str
    medians: dict[str, float]
    leader: str
    runner_up: str
    difference: float
    p_value: float
    p_bonferroni: float
    n: int
    paper_leader: str | None

    @property
    def tied(self) -> list[str]:
        """The inits whose median equals the leader's as the text prints it (one init: a real lead)."""
        best = _num(self.medians[self.leader], self.metric)
        order = list(INIT_LABELS)
        return sorted((i for i, v in self.medians.items() if _num(v, self.metric) == best),
                      key=lambda i: (order.index(i) if i in order else len(order), i))

    @property
    def significant(self) -> bool:
        """Whether the lead holds at 0.05 (after Bonferroni when ``comparisons.csv`` gave the pair)."""
        p = self.p_bonferroni if math.isfinite(self.p_bonferroni) else self.p_value
        return math.isfinite(p) and p < _ALPHA


def _test(comparisons: pd.DataFrame | None, patients: pd.DataFrame, metric: str, a: str, b: str) -> tuple[float, float, int]:
    if comparisons is not None and not comparisons.empty:
        hit = comparisons[(comparisons["metric"] == metric)
                          & (((comparisons["a"] == a) & (comparisons["b"] == b)) | ((comparisons["a"] == b) & (comparisons["b"] == a)))]
        if len(hit):
            r = hit.iloc[0]
            return float(r["p_value"]), float(r["p_bonferroni"]), int(r["n"])
    wide = patients.pivot_table(index="scan_id", columns="init", values=metric, aggfunc="first")
    res = wilcoxon_signed_rank(wide[a].to_numpy(float), wide[b].to_numpy(float))
    return float(res.p_value), float("nan"), int(res.n)


def metric_leads(patients: pd.DataFrame, comparisons: pd.DataFrame | None = None,
                 metrics: Sequence[str] = STORY_METRICS) -> list[Lead]:
    """One :class:`Lead` per metric of ``metrics`` present in ``patients`` (at least two inits needed)."""
    leads = []
    diffs = paired_differences(patients, metrics)
    for metric in metrics:
        if metric not in patients.columns:
            continue
        med = patients.groupby("init")[metric].median().dropna()
        if len(med) < 2:
            continue
        lower = metric in _LOWER_IS_BETTER
        ranked = med.sort_values(ascending=lower)
        leader, runner = str(ranked.index[0]), str(ranked.index[1])
        p, p_bonf, n = _test(comparisons, patients, metric, leader, runner)
        paper = PAPER_TABLE1.get(metric)
        paper_leader = (min if lower else max)(paper, key=paper.get) if paper else None
        leads.append(Lead(metric, {str(k): float(v) for k, v in ranked.items()}, leader, runner,
                          diffs.get((metric, leader, runner), float("nan")), p, p_bonf, n, paper_leader))
    return leads


def _lead_line(lead: Lead) -> str:
    m = lead.metric
    if len(lead.tied) > 1:
        rest = ", ".join(f"{_name(i)} {_num(v, m)}" for i, v in lead.medians.items() if i not in lead.tied)
        return (f"- **{METRIC_LABELS.get(m, m)}**: **no single init led**: "
                f"{_names(lead.tied)} share the best median ({_num(lead.medians[lead.leader], m)})"
                + (f", then {rest}" if rest else "") + f" (n = {lead.n}).")
    others = ", ".join(f"{_name(i)} {_num(v, m)}" for i, v in list(lead.medians.items())[1:])
    p = f"paired Wilcoxon p = {_p(lead.p_value)}"
    if math.isfinite(lead.p_bonferroni):
        p += f", {_p(lead.p_bonferroni)} after Bonferroni"
    sure = "a lead that holds at 0.05" if lead.significant else "not significant at 0.05: could be chance on these patients"
    better = "fewer" if lead.metric in _LOWER_IS_BETTER else "higher"
    if lead.paper_leader is None:
        paper = ""
    elif lead.paper_leader == lead.leader:
        paper = f" **Matches the paper**, where {_name(lead.paper_leader)} also led ({_num(PAPER_TABLE1[m][lead.paper_leader], m)})."
    else:
        paper = (f" **Differs from the paper**, where {_name(lead.paper_leader)} led "
                 f"({_num(PAPER_TABLE1[m][lead.paper_leader], m)}; "
                 f"{_name(lead.leader)} {_num(PAPER_TABLE1[m].get(lead.leader, float('nan')), m)}).")
    return (f"- **{METRIC_LABELS.get(lead.metric, lead.metric)}** ({better} is better): **{_name(lead.leader)} led** "
            f"with a median of {_num(lead.medians[lead.leader], m)} (then {others}); per patient, {_name(lead.leader)} minus "
            f"{_name(lead.runner_up)} has a median of {_diff(lead.difference, m)} ({p}; n = {lead.n}): {sure}.{paper}")


def _seed_study(run_dir: Path) -> Path | None:
    path = Path(run_dir).resolve().parent / "seed_study" / "seed_study.md"
    return path if path.is_file() else None


def outcome_markdown(run_dir: str | Path) -> str:
    """The comparison of the inits on the test patients, or a line saying it is not made yet."""
    rd = RunDir(run_dir)
    patients_csv = rd.eval_table("patients")
    if not patients_csv.is_file():
        return "The inits are compared on the test patients in notebook 05, which has not run yet (no `eval/patients.csv`)."
    comparisons_csv = rd.eval_table("comparisons")
    leads = metric_leads(pd.read_csv(patients_csv), pd.read_csv(comparisons_csv) if comparisons_csv.is_file() else None)
    if not leads:
        return "`eval/patients.csv` holds fewer than two inits: there is nothing to compare."
    lines = [f"**This run:** {_headline(leads)}", ""] + [_lead_line(lead) for lead in leads]
    study = _seed_study(rd.config_yaml.parent)
    lines.append("")
    if study is not None:
        lines.append(f"A seed study lies next to this run: `{study}`. It says which of these leads hold over training "
                     "seeds; one run's ranking can flip on another seed or CPU.")
    else:
        lines.append("One run is one draw: `sapkit seeds` repeats it over training seeds and writes "
                     "`runs/seed_study/seed_study.md` next to this run, which this text then points to.")
    return "\n".join(lines)


def _headline(leads: Sequence[Lead]) -> str:
    clear = [lead for lead in leads if len(lead.tied) == 1]
    if not clear:
        return f"No init led on any of the {len(leads)} key metrics: the best medians are shared."
    wins: dict[str, list[str]] = {}
    for lead in clear:
        wins.setdefault(lead.leader, []).append(_SHORT.get(lead.metric, lead.metric))
    top = max(wins, key=lambda init: len(wins[init]))  # the first-listed init among equals: F2's leader first
    text = f"{_name(top)} led on {len(wins[top])} of {len(leads)} key metrics ({', '.join(wins[top])})."
    first = leads[0]
    name = _SHORT.get(first.metric, first.metric)
    if len(first.tied) > 1:
        return text + (f" On {name} no single init led: {_names(first.tied)} share "
                       f"{_num(first.medians[first.leader], first.metric)}.")
    sure = "significant" if first.significant else "not significant"
    paper = "as in the paper" if first.paper_leader == first.leader else \
        (f"unlike the paper ({_name(first.paper_leader)} led there)" if first.paper_leader else "")
    return (text + f" On {name}, {_name(first.leader)} {_num(first.medians[first.leader], first.metric)} vs "
            f"{_name(first.runner_up)} {_num(first.medians[first.runner_up], first.metric)} (median paired difference "
            f"{_diff(first.difference, first.metric)}, p = {_p(first.p_value)}: {sure}), {paper}.").replace(", .", ".")


def run_headline(run_dir: str | Path) -> str | None:
    """One sentence on who led (plain text), or None before notebook 05 evaluated the run."""
    rd = RunDir(run_dir)
    if not rd.eval_table("patients").is_file():
        return None
    comparisons = rd.eval_table("comparisons")
    leads = metric_leads(pd.read_csv(rd.eval_table("patients")), pd.read_csv(comparisons) if comparisons.is_file() else None)
    return _headline(leads) if leads else None


def _read_log(path: Path) -> pd.DataFrame | None:
    try:
        return pd.read_csv(path)
    except (OSError, ValueError):
        return None


def _trend(log: pd.DataFrame, column: str, what: str) -> str:
    """``"<what> went from a (epoch i) to b (epoch j)"`` or ``"<what> was a after its only epoch"``."""
    part = log.dropna(subset=[column])
    first, last = part.iloc[0], part.iloc[-1]
    if len(part) == 1:
        return f"{what} was {_num(first[column])} (epoch {int(first['epoch'])}, its only value)"
    return (f"{what} went from {_num(first[column])} (epoch {int(first['epoch'])}) to {_num(last[column])} "
            f"(epoch {int(last['epoch'])})")


def learning_story(run_dir: str | Path, stage: str) -> str:
    """What the training logs of ``stage`` (``skeleton``, ``ssl`` or ``lesion``) show, in sentences."""
    rd = RunDir(run_dir)
    if stage in ("skeleton", "ssl"):
        md, name = (rd.skeleton, "skeleton model") if stage == "skeleton" else (rd.ssl, "SSL model")
        log = _read_log(md.log_csv)
        if log is None or "loss" not in log or log["loss"].dropna().empty:
            return f"No training log in `{stage}/log.csv` yet."
        sentences = [_trend(log, "loss", f"The {name}'s training loss") + "."]
        if "val_dice_mean" in log and log["val_dice_mean"].notna().any():
            val = log.dropna(subset=["val_dice_mean"])
            best = val.loc[val["val_dice_mean"].idxmax()]
            sentences.append(_trend(log, "val_dice_mean", "Its validation Dice (mean over bones)")
                             + f", best {_num(best['val_dice_mean'])} at epoch {int(best['epoch'])}.")
        elif "val_loss" in log and log["val_loss"].notna().any():
            sentences.append(_trend(log, "val_loss", "Its loss on the validation scans") + ".")
        return " ".join(sentences)
    rows = []
    for init_dir in sorted(p for p in rd.lesion_dir.glob("*") if p.is_dir()) if rd.lesion_dir.is_dir() else []:
        for log_csv in sorted(init_dir.glob("fold_*/log.csv")):
            log = _read_log(log_csv)
            if log is None or "loss" not in log:
                continue
            loss = log.dropna(subset=["loss"])
            val = log.dropna(subset=["val_dice_mean"]) if "val_dice_mean" in log else log.iloc[:0]
            rows.append({"init": init_dir.name, "first_loss": loss["loss"].iloc[0] if len(loss) else np.nan,
                         "last_loss": loss["loss"].iloc[-1] if len(loss) else np.nan, "epochs": len(loss),
                         "last_val": val["val_dice_mean"].iloc[-1] if len(val) else np.nan})
    if not rows:
        return "No lesion model has a training log yet."
    table = pd.DataFrame(rows).groupby("init").agg(first_loss=("first_loss", "mean"), last_loss=("last_loss", "mean"),
                                                   last_val=("last_val", "mean"), epochs=("epochs", "max"),
                                                   folds=("first_loss", "size"))
    measures = [("first_loss", "training loss after the first epoch", "lowest")]
    if table["epochs"].max() > 1:
        measures.append(("last_loss", "training loss at the last epoch", "lowest"))
    measures.append(("last_val", "validation Dice at the last validated epoch", "highest"))
    sentences = []
    for column, what, best in measures:
        col = table[column].dropna()
        if col.empty:
            continue
        order = col.sort_values(ascending=best == "lowest")
        listed = ", ".join(f"{_name(i)} {_num(v)}" for i, v in order.items())
        lead = (f"no init ahead" if len({_num(v) for v in order}) == 1 else f"**{_name(order.index[0])} {best}**")
        sentences.append(f"{what[0].upper() + what[1:]} (mean over folds): {lead} ({listed}).")
    n_folds = ", ".join(f"{_name(i)} {int(n)}" for i, n in table["folds"].items())
    stuck = stuck_models(rd.lesion_dir)
    if len(stuck):
        names = ", ".join(f"{_name(r.init)} fold {r.fold} (loss {_num(r.last_loss)})" for r in stuck.itertuples())
        sentences.append(f"**Never took off: {names}** — each ended at the loss of predicting no lesion with "
                         "validation Dice 0, so its held-out patients score 0 whatever the init is worth "
                         "(docs/reproducibility.md §5; the seed study shows how often this happens).")
    return " ".join(sentences) + f" Models per init: {n_folds}. Training curves say how the models fit; only the " \
        "held-out patients of notebook 05 say which init finds lesions better."


def run_story(run_dir: str | Path, stage: str = "evaluation") -> str:
    """Markdown for the closing cell of a notebook: what the logs of ``stage`` show, then the outcome.

    Parameters
    ----------
    run_dir : path
        The run folder.
    stage : {"skeleton", "ssl", "lesion", "evaluation"}
        Notebook 02, 03, 04 or 05 (and the report): the training logs of that stage first, then the
        comparison of the inits (:func:`outcome_markdown`).
    """
    parts = [] if stage == "evaluation" else [learning_story(run_dir, stage), ""]
    return "\n".join(parts + [outcome_markdown(run_dir)])


_TESTS = {"wilcoxon": "Wilcoxon signed-rank (paired by patient)", "mannwhitney": "Mann–Whitney U (detected lesions)"}


def comparisons_table(run_dir: str | Path) -> pd.DataFrame | None:
    """``eval/comparisons.csv`` for readers: plain metric names, ``SAP vs scratch``, the difference, p-values.

    The difference is the median over patients of (a − b) for patient-level metrics and the difference
    of the medians over detected lesions for the lesion-level ones (different lesion sets cannot be
    paired). None when the run has no ``comparisons.csv`` yet.
    """
    rd = RunDir(run_dir)
    if not rd.eval_table("comparisons").is_file():
        return None
    comp = pd.read_csv(rd.eval_table("comparisons"))
    patients = pd.read_csv(rd.eval_table("patients")) if rd.eval_table("patients").is_file() else pd.DataFrame()
    lesions = pd.read_csv(rd.eval_table("lesions")) if rd.eval_table("lesions").is_file() else pd.DataFrame()
    paired = paired_differences(patients, tuple(comp["metric"].unique())) if len(patients) else {}
    rows = []
    for r in comp.itertuples(index=False):
        if str(r.metric).endswith("_detected_lesion") and len(lesions):
            col = "dice" if str(r.metric).startswith("dice") else "nsd"
            det = lesions[lesions["detected"].astype(bool)]
            diff = float(det[det["init"] == r.a][col].median() - det[det["init"] == r.b][col].median())
        else:
            diff = paired.get((r.metric, r.a, r.b), float("nan"))
        test = next((label for key, label in _TESTS.items() if key in str(r.test).lower().replace("-", "").replace(" ", "")),
                    str(r.test))
        rows.append({"metric": METRIC_LABELS.get(r.metric, r.metric), "comparison": f"{_name(r.a)} vs {_name(r.b)}",
                     "n": int(r.n), "median difference (a − b)": _diff(diff, r.metric), "p": _p(r.p_value),
                     "p (Bonferroni)": _p(r.p_bonferroni), "test": test})
    return pd.DataFrame(rows)
