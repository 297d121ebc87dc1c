"""Cohort-level evaluation: read a run folder, tune the threshold, evaluate the test folds, write tables.

Run-folder contract (docs/design.md §5): ``data/manifest.yaml`` (GT lesion and skeleton labels),
``splits.json`` (folds, tuning fold), ``predictions/<init>/<scan_id>_prob.nii.gz``. For each
init the probability threshold is tuned on the tuning fold's predictions (maximum median patient
F2, docs/metrics.md §11) and applied unchanged to the test folds. Written into ``eval/`` (atomically):
``threshold.json``, ``lesions.csv``, ``predictions.csv``, ``patients.csv``, ``froc.csv``,
``comparisons.csv``, ``table1.csv``, ``table1.md``.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from sapkit.config import Config, EvalConfig
from sapkit.data.manifest import load_manifest
from sapkit.data.splits import load_splits, resolve_folds
from sapkit.errors import ConfigError, EvaluationError
from sapkit.io.atomic import atomic_write_csv, atomic_write_text
from sapkit.evaluation.readers import read_mask, read_prob_map
from sapkit.io.nifti import check_same_grid, spacing_from_affine
from sapkit.io.run_paths import PredictionDir, RunDir
from sapkit.jobs.progress import progress_bar
from sapkit.metrics import (
    LESION_COLUMNS,
    PREDICTION_COLUMNS,
    FrocCurve,
    ThresholdChoice,
    froc_curve,
    grid_edge,
    lesion_counts_by_threshold,
    lesion_report,
    tune_threshold,
)
from sapkit.evaluation.tables import compare_inits, flags_note, table1, table1_markdown, table1_values

__all__ = ["CohortResult", "RunEvaluation", "read_prob_map", "case_table", "cohort_counts", "evaluate_cohort",
           "evaluate_run"]

_CASE_COLUMNS = ("scan_id", "gt_path", "prob_path", "skeleton_path")


def _load_case(row: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, tuple[float, ...]]:
    gt, affine = read_mask(row["gt_path"], what="lesion label")
    prob, p_affine = read_prob_map(row["prob_path"])
    check_same_grid(gt.shape, affine, prob.shape, p_affine, name_a=f"lesion label {row['gt_path']}",
                    name_b=f"probability map {row['prob_path']}")
    skel = None
    if row.get("skeleton_path"):
        skel, s_affine = read_mask(row["skeleton_path"], what="skeleton label")
        check_same_grid(gt.shape, affine, skel.shape, s_affine, name_a=f"lesion label {row['gt_path']}",
                        name_b=f"skeleton label {row['skeleton_path']}")
    return gt, prob, skel, spacing_from_affine(affine)


def _check_cases(cases: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in _CASE_COLUMNS[:3] if c not in cases.columns]
    if missing:
        raise EvaluationError(f"cases table lacks column(s) {missing}; expected {list(_CASE_COLUMNS)}")
    out = cases.copy()
    if "skeleton_path" not in out.columns:
        out["skeleton_path"] = ""
    out["skeleton_path"] = out["skeleton_path"].fillna("").astype(str)
    absent = [str(p) for p in out["prob_path"] if not Path(p).is_file()]
    if absent:
        raise EvaluationError(f"{len(absent)} probability map(s) missing, e.g. {absent[:3]}; run inference for these scans")
    return out


def _progress(items: Iterable, enabled: bool, desc: str) -> Iterable:
    if not enabled:
        return items
    return progress_bar(list(items), desc=desc, leave=False)


def cohort_counts(cases: pd.DataFrame, *, eval_config: EvalConfig = EvalConfig(), progress: bool = False,
                  jobs: int = 1) -> pd.DataFrame:
    """Detection counts per case and threshold of ``eval_config.thresholds`` (for tuning and FROC).

    Parameters
    ----------
    cases : DataFrame
        Columns ``scan_id, gt_path, prob_path`` (``skeleton_path`` optional).
    jobs : int
        Worker processes (one case each at a time); 1 evaluates in this process.

    Returns
    -------
    DataFrame
        Rows of :func:`~sapkit.metrics.lesion_counts_by_threshold` for every case.
    """
    cases = _check_cases(cases)
    frames = list(_map_cases(_counts_of_case, cases.to_dict("records"), eval_config, jobs, progress, "counts"))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _map_cases(fn: Any, rows: list[dict[str, Any]], e: EvalConfig, jobs: int, progress: bool, desc: str) -> Iterable:
    """``fn(row, e)`` for every case, in order; in ``jobs`` worker processes when ``jobs > 1``."""
    if int(jobs) < 1:
        raise ConfigError(f"jobs must be ≥ 1, got {jobs!r}; e.g. --jobs 4")
    if int(jobs) == 1 or len(rows) < 2:
        return (fn(r, e) for r in _progress(rows, progress, desc))
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(max_workers=min(int(jobs), len(rows)), mp_context=multiprocessing.get_context("spawn"))
    with pool:
        return list(_progress(pool.map(fn, rows, [e] * len(rows)), progress, desc))


def _counts_of_case(row: Mapping[str, Any], e: EvalConfig) -> pd.DataFrame:
    gt, prob, _, spacing = _load_case(row)
    return lesion_counts_by_threshold(gt, prob, spacing_mm=spacing, thresholds=e.thresholds,
                                      connectivity=e.connectivity, hit=e.hit, large_lesion_ml=e.large_lesion_ml,
                                      precision=e.precision, scan_id=str(row["scan_id"]))


def _evaluate_case(row: Mapping[str, Any], e: EvalConfig, threshold: float) -> tuple[Any, pd.DataFrame]:
    gt, prob, skel, spacing = _load_case(row)
    scan_id = str(row["scan_id"])
    rep = lesion_report(gt, prob_map=prob, threshold=threshold, spacing_mm=spacing, connectivity=e.connectivity,
                        hit=e.hit, precision=e.precision, tolerance_mm=e.tolerance_mm, nsd_mode=e.nsd_mode,
                        skeleton=skel, large_lesion_ml=e.large_lesion_ml, oversize_ml=e.oversize_ml, scan_id=scan_id)
    counts = lesion_counts_by_threshold(gt, prob, spacing_mm=spacing, thresholds=e.thresholds,
                                        connectivity=e.connectivity, hit=e.hit, large_lesion_ml=e.large_lesion_ml,
                                        precision=e.precision, scan_id=scan_id)
    return rep, counts


@dataclass(frozen=True)
class CohortResult:
    """Lesion-wise results of a cohort at one threshold.

    Attributes
    ----------
    lesions, predictions, patients : DataFrame
        Concatenated per-case tables (``patients`` has one row per case).
    counts : DataFrame
        Per case and threshold of the grid (FROC input).
    threshold : float
    """

    lesions: pd.DataFrame
    predictions: pd.DataFrame
    patients: pd.DataFrame
    counts: pd.DataFrame
    threshold: float


def evaluate_cohort(cases: pd.DataFrame, *, threshold: float, eval_config: EvalConfig = EvalConfig(),
                    progress: bool = False, jobs: int = 1) -> CohortResult:
    """Lesion-wise evaluation of every case at ``threshold`` plus the threshold-grid counts.

    Each case is read once. Extra columns of ``cases`` (``subject_id``, ``fold`` …) are copied
    into ``patients``.

    Parameters
    ----------
    cases : DataFrame
        Columns ``scan_id, gt_path, prob_path`` and optionally ``skeleton_path``.
    threshold : float
        Probability threshold in (0, 1].
    eval_config : EvalConfig
        Connectivity, hit rule, tolerance, NSD mode, ≥ 1 mL limit and threshold grid.
    jobs : int
        Worker processes (cases are independent; results keep the order of ``cases``).

    Returns
    -------
    CohortResult
    """
    cases = _check_cases(cases)
    extra = [c for c in cases.columns if c not in _CASE_COLUMNS]
    lesions, preds, patients, counts = [], [], [], []
    rows = cases.to_dict("records")
    results = _map_cases(functools.partial(_evaluate_case, threshold=float(threshold)), rows, eval_config, jobs,
                         progress, "evaluate")
    for row, (rep, case_counts) in zip(rows, results, strict=True):  # strict: the progress bar reaches 100 %
        counts.append(case_counts)
        lesions.append(rep.lesions)
        preds.append(rep.predictions)
        patients.append({**rep.patient.to_dict(), **{c: row[c] for c in extra}})
    return CohortResult(
        pd.concat(lesions, ignore_index=True) if lesions else pd.DataFrame(columns=list(LESION_COLUMNS)),
        pd.concat(preds, ignore_index=True) if preds else pd.DataFrame(columns=list(PREDICTION_COLUMNS)),
        pd.DataFrame(patients), pd.concat(counts, ignore_index=True) if counts else pd.DataFrame(),
        float(threshold))


def case_table(manifest: Any, splits: Mapping[str, Any], pred_dir: str | Path, *, folds: str = "test",
               only_folds: Sequence[str] | None = None) -> pd.DataFrame:
    """Cases of the patient cohort for one init: ``folds`` = ``"test"`` or ``"tune"``.

    ``only_folds`` restricts the test folds to these fold ids (the folds that were fine-tuned).

    Returns
    -------
    DataFrame
        ``scan_id``, ``gt_path``, ``prob_path``, ``skeleton_path``, ``subject_id``, ``fold``.
    """
    tuning = str(splits["tuning_fold"])
    fold_of = {str(s): str(f) for f, subjects in splits["folds"].items() for s in subjects}
    pts = manifest.patients()
    rows = []
    for r in pts.to_dict("records"):
        fold = fold_of.get(str(r["subject_id"]))
        if fold is None or (folds == "tune") != (fold == tuning):
            continue
        if folds == "test" and only_folds is not None and fold not in set(map(str, only_folds)):
            continue
        rows.append({"scan_id": r["scan_id"], "gt_path": r["lesion_label"],
                     "prob_path": str(PredictionDir(pred_dir).probability_map(r["scan_id"])),
                     "skeleton_path": r.get("skeleton_label", "") or "", "subject_id": r["subject_id"], "fold": fold})
    return pd.DataFrame(rows, columns=[*_CASE_COLUMNS, "subject_id", "fold"])


@dataclass(frozen=True)
class RunEvaluation:
    """Everything :func:`evaluate_run` computed and wrote.

    Attributes
    ----------
    lesions, predictions, patients : DataFrame
        Test-fold tables with an ``init`` column.
    counts : DataFrame
        Test-fold counts per init, case and threshold.
    thresholds : dict init → ThresholdChoice
    froc : dict init → {"all": FrocCurve, "large": FrocCurve}
    table1_values, table1, comparisons : DataFrame
    files : dict name → Path
    """

    lesions: pd.DataFrame
    predictions: pd.DataFrame
    patients: pd.DataFrame
    counts: pd.DataFrame
    thresholds: dict[str, ThresholdChoice]
    froc: dict[str, dict[str, FrocCurve]]
    table1_values: pd.DataFrame
    table1: pd.DataFrame
    comparisons: pd.DataFrame
    files: dict[str, Path] = field(default_factory=dict)


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def evaluate_run(run_dir: str | Path, config: Config, *, inits: Sequence[str] | None = None,
                 progress: bool = True, jobs: int = 1) -> RunEvaluation:
    """Tune, evaluate and tabulate every init of a run folder; write ``run_dir/eval``.

    Parameters
    ----------
    run_dir : str or Path
        Run folder following the contract of docs/design.md §5.
    config : Config
        Resolved configuration; ``config.eval`` holds every evaluation choice.
    inits : sequence of str, optional
        Initialisations to evaluate (default: ``config.lesion.inits`` that have predictions).
    progress : bool
        Show tqdm progress bars.
    jobs : int
        Worker processes for reading and evaluating cases.

    Returns
    -------
    RunEvaluation

    Raises
    ------
    ConfigError
        ``lesion.folds`` lacks ``"tune"`` (the threshold needs the tuning-fold predictions).
    EvaluationError
        No predictions, missing probability maps, or an empty tuning fold.
    NiftiError
        A probability map is not a 3D map of probabilities.
    """
    rd = RunDir(run_dir)
    e = config.eval
    manifest = load_manifest(rd.data, check_files=False)
    splits = load_splits(run_dir)
    selected = resolve_folds(splits, config.lesion.folds)
    if "tune" not in selected:
        raise ConfigError(f"lesion.folds {list(config.lesion.folds)} has no 'tune': the threshold is tuned on the "
                          "predictions of the tuning-fold model; add 'tune' (or use ['all'])")
    test_ids = [f for f in selected if f != "tune"]
    wanted = list(inits) if inits is not None else list(config.lesion.inits)
    present = [i for i in wanted if rd.predictions(i).is_dir()]
    if not present:
        raise EvaluationError(f"no predictions under {rd.predictions_dir} for inits {wanted}; "
                          "run notebook 04 (fine-tuning and inference) first")
    lesions, preds, patients, counts = [], [], [], []
    choices: dict[str, ThresholdChoice] = {}
    frocs: dict[str, dict[str, FrocCurve]] = {}
    for init in present:
        pred_dir = rd.predictions(init)
        tune_cases = case_table(manifest, splits, pred_dir, folds="tune")
        if tune_cases.empty:
            raise EvaluationError(f"the tuning fold {splits['tuning_fold']} holds no patient scans; re-create splits.json")
        choice = tune_threshold(cohort_counts(tune_cases, eval_config=e, progress=progress, jobs=jobs),
                                statistic=e.tune_statistic, what=f"init {init}")
        choices[init] = choice
        result = evaluate_cohort(case_table(manifest, splits, pred_dir, folds="test", only_folds=test_ids), threshold=choice.threshold,
                                 eval_config=e, progress=progress, jobs=jobs)
        for frame, bucket in ((result.lesions, lesions), (result.predictions, preds), (result.patients, patients),
                              (result.counts, counts)):
            bucket.append(frame.assign(init=init))
        frocs[init] = {"all": froc_curve(result.counts, max_fp=e.froc_max_fp),
                       "large": froc_curve(result.counts, max_fp=e.froc_max_fp_large, subset="large")}
    les, prd, pat, cnt = (pd.concat(b, ignore_index=True) for b in (lesions, preds, patients, counts))
    values = table1_values(pat, les, froc_auc={i: f["all"].auc for i, f in frocs.items()},
                           n_resamples=e.n_bootstrap, seed=e.seed)
    t1 = table1(values)
    comparisons = compare_inits(pat, les)
    files = {
        "threshold": atomic_write_text(rd.threshold_json, json.dumps(_jsonable({
            i: {**c.to_dict(), "hit": e.hit, "connectivity": e.connectivity} for i, c in choices.items()}), indent=2)),
        "lesions": atomic_write_csv(les, rd.eval_table("lesions")),
        "predictions": atomic_write_csv(prd, rd.eval_table("predictions")),
        "patients": atomic_write_csv(pat, rd.eval_table("patients")),
        "froc": atomic_write_csv(pd.concat([f[s].to_frame().assign(init=i, subset=s, auc=f[s].auc, max_fp=f[s].max_fp,
                                                                   last_fp_per_exam=f[s].last_fp_per_exam,
                                                                   extrapolated_share=f[s].extrapolated_share)
                                      for i, f in frocs.items() for s in ("all", "large")], ignore_index=True),
                           rd.eval_table("froc")),
        "comparisons": atomic_write_csv(comparisons, rd.eval_table("comparisons")),
        "table1_csv": atomic_write_csv(t1, rd.eval_table("table1")),
        "table1_md": atomic_write_text(rd.table1_md, table1_markdown(t1, note=(
            f"Medians over {pat['scan_id'].nunique()} test scans; 95 % CI: percentile bootstrap "
            f"({e.n_bootstrap} resamples, seed {e.seed}). Hit rule {e.hit}, connectivity {e.connectivity}, "
            f"NSD tolerance {e.tolerance_mm:g} mm ({e.nsd_mode} mode), thresholds tuned on fold "
            f"{splits['tuning_fold']} by {e.tune_statistic} F2: "
            + ", ".join(f"{i} {c.threshold:g}" + (" (grid edge, §11.1)" if grid_edge(c) else "")
                        for i, c in choices.items())
            + ". " + flags_note(pat, e.oversize_ml) + " Paper columns: journal Table 1 (Baseline = scratch)."))),
    }
    return RunEvaluation(les, prd, pat, cnt, choices, frocs, values, t1, comparisons, files)
