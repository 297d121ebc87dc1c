"""``sapkit evaluate``: lesion-wise evaluation of one case, a cohort, or a whole run folder.

One case::

    sapkit evaluate --gt GT.nii.gz --pred PRED.nii.gz [--prob --threshold T] [--tolerance-mm 2]
                    [--connectivity 26] [--hit any|iou:0.5] [--skeleton S.nii.gz] --json OUT

A cohort (patient scans of a manifest with ``<pred-dir>/<scan_id>_prob.nii.gz``; a scan that
``<pred-dir>/predictions.csv`` lists without its map is refused, or with ``--allow-missing`` left
out and counted in the summary and ``table1.md``)::

    sapkit evaluate --manifest MANIFEST --pred-dir DIR --threshold T --out DIR [--jobs N] [--allow-missing]

A run folder (threshold tuned on the tuning fold, test folds evaluated, ``eval/`` written)::

    sapkit evaluate --run-dir runs/smoke --profile smoke [--jobs N]

Masks are read without copies (memory-mapped ``.nii``) and validated in at most one min/max pass;
probability maps are binarised by the kit's one rule (``prob >= t`` in the map's dtype). One case
imports only numpy, nibabel, cc3d and PyYAML (no pandas, scipy, torch or MONAI: a test checks it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any

from sapkit.cli._common import add_profile_arguments, declare_profile, run_dir_from_args
from sapkit.errors import ConfigError, EvaluationError, SapkitError
from sapkit.io.output_paths import OutputPlan

__all__ = ["add_arguments", "outputs", "run", "case_json"]

_COHORT_TABLES = ("lesions", "predictions", "patients", "table1")
_RUN_TABLES = ("lesions", "predictions", "patients", "froc", "comparisons", "table1")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_profile_arguments(parser, default_profile=None)  # --run-dir: the run's own config.yaml; else smoke's eval
    one = parser.add_argument_group("one case")
    one.add_argument("--gt", help="ground-truth lesion mask (NIfTI)")
    one.add_argument("--pred", help="predicted mask, or probability map with --prob (NIfTI)")
    one.add_argument("--prob", action="store_true", help="--pred is a probability map; binarise it at --threshold")
    one.add_argument("--skeleton", help="skeleton label map (NIfTI) for the lesions' bone region")
    one.add_argument("--json", dest="json_out", help="write the results as JSON here (default: print)")
    cohort = parser.add_argument_group("cohort")
    cohort.add_argument("--manifest", help="manifest.yaml (or its folder) of the GT")
    cohort.add_argument("--pred-dir", help="folder of <scan_id>_prob.nii.gz probability maps")
    cohort.add_argument("--out", help="output folder of the cohort tables (default: <pred-dir>/eval)")
    cohort.add_argument("--name", default="model", help="model name used in Table 1 (default: model)")
    cohort.add_argument("--allow-missing", action="store_true",
                        help="evaluate although maps listed in <pred-dir>/predictions.csv are missing (they are "
                             "counted in the summary and table1.md); without it such a folder is refused")
    opts = parser.add_argument_group("options (default: the profile's eval section)")
    opts.add_argument("--threshold", type=float, default=None, help="probability threshold (default 0.5)")
    opts.add_argument("--tolerance-mm", type=float, default=None, help="NSD tolerance in mm")
    opts.add_argument("--connectivity", type=int, choices=(6, 18, 26), default=None)
    opts.add_argument("--hit", default=None, help="any (≥ 1 voxel overlap) or iou:T")
    opts.add_argument("--nsd-mode", choices=("surface", "voxel"), default=None)
    opts.add_argument("--precision", choices=("lesion", "prediction"), default=None,
                      help="precision counts detected GT lesions (default) or predicted components hitting one")
    opts.add_argument("--jobs", type=int, default=1, help="worker processes for a cohort or run folder (default 1)")


def outputs(args: argparse.Namespace) -> OutputPlan:
    """What each form reads (masks; manifest and prediction folder; run folder) and writes (--json; tables)."""
    from sapkit.io.run_paths import EvalDir, PredictionDir, RunDir

    plan = OutputPlan("sapkit evaluate")
    if args.profile is None and not args.run_dir:
        args.profile = "smoke"  # the default run folder is runs/smoke
    declare_profile(plan, args)
    if args.gt:
        for path, what in ((args.gt, "the --gt mask"), (args.pred, "the --pred map"), (args.skeleton, "the --skeleton map")):
            plan.reads(path, what)
        if args.json_out:
            plan.writes(args.json_out, "--json")
        return plan  # one case stays light: no pandas (the manifest reader) on its path
    from sapkit.data.manifest import declare_manifest_inputs

    if args.manifest:
        if not args.pred_dir:
            raise SapkitError("--manifest needs --pred-dir (folder of <scan_id>_prob.nii.gz files)")
        manifest = declare_manifest_inputs(plan, args.manifest)
        pred = PredictionDir(args.pred_dir)
        if manifest is not None:  # refuse missing maps before the output folder is made
            _expected_scans(manifest.patients().to_dict("records"), pred, allow_missing=args.allow_missing)
        plan.reads_folder(pred.path, "prediction folder (--pred-dir)")
        plan.reads(pred.summary_csv, f"the prediction table {pred.summary_csv.name} of --pred-dir")
        for scan_id in pred.scan_ids():
            plan.reads(pred.probability_map(scan_id), "a probability map of --pred-dir")
        out, flag = (EvalDir(args.out), "--out") if args.out else (pred.eval_dir, "--pred-dir")
        plan.writes_folder(out.path, flag, lock=True)
        plan.writes_in(out.path, [out.table(n).name for n in _COHORT_TABLES] + [out.table1_md.name], flag)
    else:
        if args.json_out or args.out:
            raise ConfigError("--json and --out belong to one case (--gt) or a cohort (--manifest); the run-folder "
                              "form writes RUN_DIR/eval — drop them")
        rd = RunDir(run_dir_from_args(args))
        declare_manifest_inputs(plan, rd.data)
        plan.reads(rd.splits_json, f"the folds {rd.splits_json.name}")
        for folder in sorted(rd.predictions_dir.glob("*/")):
            plan.reads_folder(folder, "prediction folder")
            for scan_id in PredictionDir(folder).scan_ids():
                plan.reads(PredictionDir(folder).probability_map(scan_id), f"a probability map of {folder}")
        plan.locks(rd.path, "--run-dir")
        plan.writes_folder(rd.eval_dir, "--run-dir")
        plan.writes_in(rd.eval_dir, [rd.eval_table(n).name for n in _RUN_TABLES]
                       + [rd.table1_md.name, rd.threshold_json.name], "--run-dir")
    if args.json_out:
        plan.writes(args.json_out, "--json")
    return plan


def _config(args: argparse.Namespace, run_dir: Path | None = None) -> Any:
    """``--profile`` with ``-p``; without ``--profile``, the run folder's own ``config.yaml`` (the
    configuration the run was made with), else the smoke profile (whose ``eval`` is the default)."""
    from sapkit.cli._common import parse_overrides
    from sapkit.config import load_config

    profile = args.profile
    if profile is None:
        recorded = None
        if run_dir is not None:
            from sapkit.io.run_paths import RunDir

            recorded = RunDir(run_dir).config_yaml
        profile = recorded if recorded is not None and recorded.is_file() else "smoke"
    return load_config(profile, parse_overrides(args.overrides))


def _eval_config(args: argparse.Namespace) -> Any:
    e = _config(args).eval
    changes = {k: v for k, v in {"tolerance_mm": args.tolerance_mm, "connectivity": args.connectivity,
                                 "hit": args.hit, "nsd_mode": args.nsd_mode, "precision": args.precision}.items()
               if v is not None}
    return dataclasses.replace(e, **changes)


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_clean(x) for x in v]
    if hasattr(v, "item"):
        return _clean(v.item())
    return v


def _lesion_json(row: dict[str, Any]) -> dict[str, Any]:
    doc = {"id": int(row["lesion_id"]), "volume_ml": float(row["volume_ml"]), "detected": bool(row["detected"]),
           "dice": float(row["dice"]), "nsd": float(row["nsd"])}
    if row["bone_label"] >= 0:  # evaluated with a skeleton map
        doc.update(bone_label=int(row["bone_label"]), bone_region=str(row["bone_region"]))
    return doc


def case_json(report: Any) -> dict[str, Any]:
    """The JSON document of one case (keys in ``docs/metrics.md`` §14; bone keys with ``--skeleton``)."""
    p = report.patient
    return _clean({
        "dice": p.dice_mean, "nsd": p.nsd_detected, "global_dice": p.global_dice,
        "tp": p.tp, "fn": p.fn, "fp": p.fp, "sensitivity": p.sensitivity, "precision": p.precision, "f2": p.f2,
        "sensitivity_large": p.sensitivity_large, "fp_large": p.fp_large,
        "lesions": [_lesion_json(r) for r in report.lesion_rows],
        "predictions": [{"id": int(r["pred_id"]), "volume_ml": float(r["volume_ml"]),
                         "false_positive": bool(r["false_positive"]), "merges_lesions": bool(r["merges_lesions"]),
                         "oversized": bool(r["oversized"])} for r in report.prediction_rows],
        "flagged_predictions": {"merges_lesions": p.n_merging, "oversized": p.n_oversized,
                                "any": p.flagged},
        "parameters": report.params.to_dict(),
    })


def _import_nibabel_without_pydicom() -> None:
    """Import nibabel with pydicom hidden (a fresh ``sapkit evaluate`` process only).

    nibabel imports pydicom eagerly to decode DICOM header extensions of NIfTI files, which costs
    ~0.4 s — a fifth of the whole one-case evaluation of a 100 M-voxel pair. Lesion masks and
    probability maps never need it (without pydicom such an extension is kept as raw bytes).
    Nothing changes when nibabel or pydicom is already imported.
    """
    if "nibabel" in sys.modules or "pydicom" in sys.modules:
        return
    sys.modules["pydicom"] = None  # type: ignore[assignment]  # makes `import pydicom` raise ImportError
    try:
        import nibabel  # noqa: F401
    finally:
        del sys.modules["pydicom"]


def _run_case(args: argparse.Namespace) -> int:
    _import_nibabel_without_pydicom()
    from sapkit.evaluation.readers import read_mask, read_prob_map
    from sapkit.io.nifti import check_same_grid, spacing_from_affine
    from sapkit.metrics import lesion_report

    if not args.pred:
        raise SapkitError("--gt needs --pred (a mask, or a probability map with --prob)")
    e = _eval_config(args)
    gt, affine = read_mask(args.gt, what="GT lesion mask")
    if args.prob:
        pred, p_affine = read_prob_map(args.pred)
    else:
        pred, p_affine = read_mask(args.pred, what="predicted mask")
    check_same_grid(gt.shape, affine, pred.shape, p_affine, name_a=f"GT {args.gt}", name_b=f"prediction {args.pred}")
    skel = None
    if args.skeleton:
        skel, s_affine = read_mask(args.skeleton, what="skeleton label")
        check_same_grid(gt.shape, affine, skel.shape, s_affine, name_a=f"GT {args.gt}", name_b=f"skeleton {args.skeleton}")
    kw = dict(prob_map=pred, threshold=0.5 if args.threshold is None else args.threshold) if args.prob \
        else dict(pred_mask=pred)
    report = lesion_report(gt, spacing_mm=spacing_from_affine(affine), connectivity=e.connectivity, hit=e.hit,
                           precision=e.precision,
                           tolerance_mm=e.tolerance_mm, nsd_mode=e.nsd_mode, skeleton=skel,
                           large_lesion_ml=e.large_lesion_ml, oversize_ml=e.oversize_ml, scan_id=Path(args.gt).name, **kw)
    text = json.dumps(case_json(report), indent=2)
    if args.json_out:
        from sapkit.io.atomic import atomic_write_text

        atomic_write_text(args.json_out, text + "\n")
        print(f"{report!r}\nwrote {args.json_out}")
    else:
        print(text)
    return 0


def _run_cohort(args: argparse.Namespace) -> int:
    import pandas as pd

    from sapkit.evaluation.cohort import evaluate_cohort
    from sapkit.io.atomic import atomic_write_csv
    from sapkit.io.atomic import atomic_write_text
    from sapkit.io.run_paths import PROB_SUFFIX, EvalDir, PredictionDir
    from sapkit.data.manifest import load_manifest
    from sapkit.metrics import froc_curve
    from sapkit.evaluation.tables import table1, table1_markdown, table1_values

    e = _eval_config(args)
    manifest = load_manifest(args.manifest, check_files=False)
    pred_dir = PredictionDir(args.pred_dir)
    patients = manifest.patients().to_dict("records")
    expected, missing = _expected_scans(patients, pred_dir, allow_missing=args.allow_missing)
    rows = [{"scan_id": r["scan_id"], "gt_path": r["lesion_label"], "prob_path": str(pred_dir.probability_map(r["scan_id"])),
             "skeleton_path": r.get("skeleton_label", "") or "", "subject_id": r["subject_id"]}
            for r in expected if r["scan_id"] not in missing and pred_dir.probability_map(r["scan_id"]).is_file()]
    if not rows:
        raise SapkitError(f"no <scan_id>{PROB_SUFFIX} files in {pred_dir.path} match the patient scans of {manifest.path}")
    result = evaluate_cohort(pd.DataFrame(rows), threshold=0.5 if args.threshold is None else args.threshold,
                             eval_config=e, progress=False, jobs=args.jobs)
    out = EvalDir(args.out) if args.out else pred_dir.eval_dir
    pat, les = result.patients.assign(init=args.name), result.lesions.assign(init=args.name)
    auc = froc_curve(result.counts, max_fp=e.froc_max_fp).auc
    t1 = table1(table1_values(pat, les, froc_auc={args.name: auc}, n_resamples=e.n_bootstrap, seed=e.seed))
    atomic_write_csv(les, out.table("lesions"))
    atomic_write_csv(result.predictions.assign(init=args.name), out.table("predictions"))
    atomic_write_csv(pat, out.table("patients"))
    atomic_write_csv(t1, out.table("table1"))
    note = f"threshold {result.threshold:g}, hit {e.hit}, connectivity {e.connectivity}, τ {e.tolerance_mm:g} mm"
    if missing:
        note += (f"; {len(missing)} scan(s) listed in {pred_dir.summary_csv.name} had no probability map and are not "
                 f"evaluated (--allow-missing): {', '.join(missing)}")
    atomic_write_text(out.table1_md, table1_markdown(t1, note=note))
    summary = {"n_scans": len(rows), "n_missing": len(missing), "missing": missing, "n_patients": len(patients),
               "threshold": result.threshold, "froc_auc": auc, "median_f2": float(pat["f2"].median()),
               "out": str(out.path)}
    if args.json_out:
        atomic_write_text(args.json_out, json.dumps(_clean(summary), indent=2) + "\n")
    print(json.dumps(_clean(summary), indent=2))
    return 0


def _expected_scans(patients: list[dict[str, Any]], pred_dir: Any, *, allow_missing: bool) -> tuple[list[dict[str, Any]], list[str]]:
    """The patient rows to evaluate (those ``predictions.csv`` lists, else all) and the ids among them without a map.

    Raises
    ------
    EvaluationError
        Maps are missing and ``allow_missing`` is off.
    """
    listed = _listed_scans(pred_dir)
    expected = [r for r in patients if listed is None or r["scan_id"] in listed]
    missing = [r["scan_id"] for r in expected if not pred_dir.probability_map(r["scan_id"]).is_file()]
    if missing and not allow_missing:
        raise EvaluationError(
            f"{len(missing)} probability map(s) listed in {pred_dir.summary_csv} are missing from {pred_dir.path} "
            f"({missing[:3]}{' …' if len(missing) > 3 else ''}); run `sapkit predict` for these scans, or pass "
            "--allow-missing to evaluate the others (the missing scans are counted in the summary)")
    return expected, missing


def _listed_scans(pred_dir: Any) -> set[str] | None:
    """Scan ids that ``predictions.csv`` of a prediction folder lists (None when there is no such table)."""
    import pandas as pd

    path = pred_dir.summary_csv
    if not path.is_file():
        return None
    try:
        table = pd.read_csv(path, dtype={"scan_id": str}, keep_default_na=False)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise EvaluationError(f"{path} is not a readable table ({exc}); rerun `sapkit predict` or remove it") from None
    if "scan_id" not in table.columns:
        raise EvaluationError(f"{path} has no scan_id column; it is not a sapkit prediction table — rerun `sapkit predict` "
                              "or remove it")
    return set(table["scan_id"])


def _run_folder(args: argparse.Namespace) -> int:
    from sapkit.evaluation.cohort import evaluate_run

    run_dir = run_dir_from_args(args)
    result = evaluate_run(run_dir, _config(args, run_dir), progress=True, jobs=args.jobs)
    print(result.table1.to_string(index=False))
    for name, path in result.files.items():
        print(f"wrote {name}: {path}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.gt:
        return _run_case(args)
    if args.manifest:
        return _run_cohort(args)
    return _run_folder(args)
