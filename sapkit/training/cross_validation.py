"""Cross-validated lesion fine-tuning (scratch / SSL / SAP) and test-fold prediction.

Protocol (docs/method.md §6): folds come from ``splits.json``. The model of test fold ``k`` trains on every
other fold, the tuning fold included, and predicts fold ``k``; per init one more model,
``fold_tune``, trains on the test folds only and predicts the tuning fold (whose predictions tune
the threshold). Validation never sees the predicted fold: ``lesion.val_fraction`` (12.5 %) of the
training patients, at least one, are set aside by a seeded draw (:func:`validation_subjects`) and
not trained on; the validation curves and ``model_best.pt`` use them only. The predicted fold's
scans are read after training. ``lesion.label_fraction`` < 1 then trains on a seeded subset of the
remaining training patients (label-efficiency studies). Test predictions use ``model_final.pt``
unless ``lesion.checkpoint=best``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from sapkit.config import Config
from sapkit.errors import ConfigError, SapkitError
from sapkit.data.cases import load_cases
from sapkit.data.manifest import load_manifest
from sapkit.io.run_paths import RunDir
from sapkit.jobs.progress import progress_bar
from sapkit.data.splits import fold_subjects, load_splits, resolve_folds, training_subjects
from sapkit.training.lesion_sampler import build_sampler

# resolve_folds (now sapkit.data.splits) stays importable from here: notebook 04 imports it from this module
__all__ = ["FoldResult", "resolve_folds", "label_subset", "validation_subjects", "fold_patients", "finetune", "finetune_all",
           "folds_table"]


@dataclass(frozen=True)
class FoldResult:
    """Where one (init, fold) model and its predictions were written."""

    init: str
    fold: str
    model_dir: Path
    predictions: tuple[Path, ...]
    n_train_subjects: int
    status: str = "trained"  #: "trained", "resumed" (continued from a checkpoint) or "reused" (finished earlier)


def label_subset(subjects: Sequence[str], fraction: float, *, seed: int) -> list[str]:
    """A seeded subset of ``ceil(fraction × n)`` training subjects (at least one).

    Examples
    --------
    >>> label_subset(["a", "b", "c", "d"], 0.5, seed=0) == label_subset(["d", "c", "b", "a"], 0.5, seed=0)
    True
    """
    if not 0 < fraction <= 1:
        raise ConfigError(f"lesion.label_fraction must be in (0, 1], got {fraction}")
    ordered = sorted(subjects)
    n = max(1, int(np.ceil(fraction * len(ordered))))
    if n >= len(ordered):
        return ordered
    rng = np.random.default_rng([seed, 7919])
    return sorted(rng.choice(ordered, size=n, replace=False).tolist())


def validation_subjects(subjects: Sequence[str], fraction: float, *, seed: int) -> list[str]:
    """The seeded validation patients of a fold: ``max(1, round(fraction × n))`` of its ``n`` training subjects.

    Validation must leave at least one patient to train on: with ``fraction`` 0 or fewer than two
    training subjects the result is empty (no validation). The draw depends only on the sorted
    subject ids and ``seed`` (its own stream, independent of :func:`label_subset`).

    Examples
    --------
    >>> validation_subjects([f"p{i}" for i in range(16)], 0.125, seed=42) == validation_subjects(
    ...     [f"p{i}" for i in reversed(range(16))], 0.125, seed=42)
    True
    >>> len(validation_subjects([f"p{i}" for i in range(16)], 0.125, seed=42)), validation_subjects(["a"], 0.125, seed=0)
    (2, [])
    """
    if not 0 <= fraction < 1:
        raise ConfigError(f"lesion.val_fraction must be in [0, 1), got {fraction}")
    ordered = sorted(map(str, subjects))
    if fraction == 0 or len(ordered) < 2:
        return []
    n = min(max(1, int(round(fraction * len(ordered)))), len(ordered) - 1)
    rng = np.random.default_rng([seed, 7907])
    return sorted(rng.choice(ordered, size=n, replace=False).tolist())


def fold_patients(splits: dict[str, Any], fold: str | int, config: Config) -> tuple[list[str], list[str]]:
    """The (training, validation) patients of one lesion model: the fold's candidates less a seeded
    ``lesion.val_fraction`` validation draw, then the ``lesion.label_fraction`` subset for training.

    The one rule :func:`finetune` and the multi-node launcher (:mod:`sapkit.training.launch`) share.
    """
    candidates = training_subjects(splits, str(fold))
    val_subjects = validation_subjects(candidates, config.lesion.val_fraction, seed=config.seed)
    held = set(val_subjects)
    train_subjects = label_subset([s for s in candidates if s not in held], config.lesion.label_fraction,
                                  seed=config.seed)
    return train_subjects, val_subjects


def finetune(
    run_dir: str | Path, config: Config, *, init: str, fold: str | int, data: str | Path | None = None,
    pretrained: str | Path | None = None, resume: bool = False, predict: bool = True, progress: bool = True,
    rank: int = 0, world_size: int = 1, manifest: Any = None, cases: Sequence[Any] | None = None,
) -> FoldResult:
    """Train one lesion model (``init`` × ``fold``) and predict its held-out patients.

    Parameters
    ----------
    run_dir : path
        Run folder holding ``splits.json`` and (for SAP/SSL) ``skeleton/`` / ``ssl/``.
    init : {"scratch", "ssl", "sap"}
    fold : str or int
        A test fold id or ``"tune"``.
    data : path, optional
        Manifest folder (default ``run_dir/data``).
    pretrained : path, optional
        Checkpoint to transfer from instead of the run's skeleton/SSL model (e.g. the authors' layout).
    rank, world_size : int
        DDP placement of this process (``torchrun``): the sampler shards positives by rank.
    manifest : Manifest, optional
        The already loaded manifest of ``data`` (saves re-validating every file per model).
    cases : sequence of Case, optional
        Already loaded and preprocessed patient cases (``load_cases(manifest, cohort="patient")``);
        the fold's training and held-out patients are taken from them instead of re-reading files.

    Returns
    -------
    FoldResult
    """
    from sapkit.inference.predict import predict_manifest
    from sapkit.training.lesion_task import train_lesion

    run_dir = Path(run_dir)
    if manifest is None:
        manifest = load_manifest(RunDir.data_dir(run_dir, data))
    splits = load_splits(run_dir)
    fold = str(fold)
    held_out = fold_subjects(splits, fold)
    candidates = training_subjects(splits, fold)
    train_subjects, val_subjects = fold_patients(splits, fold, config)
    if config.lesion.checkpoint == "best" and not val_subjects:
        raise ConfigError(f"lesion.checkpoint=best needs validation patients, but fold {fold} sets none aside "
                          f"(lesion.val_fraction={config.lesion.val_fraction:g}, {len(candidates)} training patients); "
                          "set lesion.val_fraction > 0 with >= 2 training patients, or lesion.checkpoint=final")
    pct = config.preprocess.clip_percentiles

    def patient_cases(subjects: Sequence[str], show: bool = False) -> list[Any]:
        if cases is None:
            return list(load_cases(manifest, cohort="patient", subjects=list(subjects), percentiles=pct,
                                   progress=show)) if subjects else []
        ids = set(map(str, subjects))
        return [c for c in cases if c.subject_id in ids]

    train_cases = patient_cases(train_subjects, progress)
    val_cases = patient_cases(val_subjects)
    monitored = val_cases[: config.lesion.val_max_scans] if config.lesion.val_max_scans else val_cases
    if not train_cases:
        raise SapkitError(f"fold {fold} has no training patients in {manifest.path}; check splits.json")
    rd = RunDir(run_dir)
    md = rd.lesion(init, fold)
    status = _finished_status(md, config) if resume else "trained"
    if status != "reused":
        sampler = build_sampler(train_cases, config.lesion, seed=config.seed, rank=rank, world_size=world_size)
        train_lesion(run_dir, config, init=init, fold=fold, train_cases=train_cases, val_cases=monitored,
                     sampler=sampler, pretrained=pretrained, resume=resume, progress=progress)
    predictions: list[Path] = []
    if predict and rank == 0:  # the predicted fold is read only now, after training
        checkpoint = rd.lesion_model(init, fold, which="best" if config.lesion.checkpoint == "best" else "final")
        scans = manifest.scans
        scan_ids = scans.loc[(scans["cohort"] == "patient") & scans["subject_id"].astype(str).isin(set(map(str, held_out))),
                             "scan_id"].astype(str).tolist()
        predictions = [rd.probability_map(init, s) for s in scan_ids]
        fresh = status == "reused" and all(p.is_file() and p.stat().st_mtime >= checkpoint.stat().st_mtime
                                           for p in predictions)
        if not fresh:
            held_cases = patient_cases(held_out)
            scan_ids = [c.scan_id for c in held_cases]
            predict_manifest(checkpoint, manifest, rd.predictions(init), config=config, scan_ids=scan_ids,
                             progress=progress, cases={c.scan_id: c for c in held_cases})
            predictions = [rd.probability_map(init, s) for s in scan_ids]
    return FoldResult(init, fold, md.path, tuple(predictions), len(train_subjects), status)


def _finished_status(md: Any, config: Config) -> str:
    """``reused`` when ``md`` holds a finished model of this configuration, ``resumed`` when a
    checkpoint continues, else ``trained``; a changed configuration is refused (ConfigError)."""
    from sapkit.training.resume import load_resume_checkpoint

    if md.checkpoint_last.is_file():
        return "resumed"
    if not md.model("final").is_file():
        return "trained"
    ck = load_resume_checkpoint(md.path, config, "cpu", task="lesion", augment_samples=True)
    return "reused" if ck is not None and int(ck["epoch"]) >= config.lesion.epochs else "resumed"


def finetune_all(run_dir: str | Path, config: Config, *, data: str | Path | None = None,
                 resume: bool = False, pretrained: str | Path | Mapping[str, str | Path] | None = None,
                 progress: bool = True) -> list[FoldResult]:
    """Train and predict every ``lesion.inits`` × ``lesion.folds`` model, inits outer, folds inner.

    The manifest is validated and the patient scans are read once for all models; each model is
    :func:`finetune` (the fold protocol of the module docstring).

    Parameters
    ----------
    run_dir : path
        Run folder holding ``splits.json`` and (for SAP/SSL) ``skeleton/`` / ``ssl/``.
    config : Config
        Uses ``lesion`` (``inits``, ``folds`` and the recipe), ``model``, ``augment``,
        ``preprocess``, ``infer``, ``seed`` and ``device``.
    data : path, optional
        Manifest folder (default ``run_dir/data``).
    resume : bool
        Keep what is done: a finished model of the same configuration is not retrained (its
        predictions are redone only when missing or older than the model), an interrupted one
        continues from its last checkpoint. A model trained with another configuration is refused
        (ConfigError naming the differing keys). False trains every model from its start.
    pretrained : path or mapping init → path, optional
        External checkpoint(s) to transfer from instead of the run's ``skeleton/``/``ssl/`` model:
        one path for every non-scratch init, or e.g. ``{"sap": "skeleton_model.pt"}``.
    progress : bool
        tqdm bars: one over the models (its ETA is the notebook's) and one per model over epochs.

    Returns
    -------
    list of FoldResult
        In training order; :func:`folds_table` turns it into a table.
    """
    sources = _pretrained_per_init(pretrained, config.lesion.inits)
    splits = load_splits(run_dir)
    folds = resolve_folds(splits, config.lesion.folds)
    manifest = load_manifest(RunDir.data_dir(run_dir, data))
    cases = load_cases(manifest, cohort="patient", percentiles=config.preprocess.clip_percentiles, progress=progress)
    models = [(init, fold) for init in config.lesion.inits for fold in folds]
    overall = progress_bar(models, desc=f"lesion models ({len(config.lesion.inits)} inits × {len(folds)} folds)",
                           unit="model", disable=not progress)  # the notebook's overall estimate
    return [finetune(run_dir, config, init=init, fold=fold, data=data, pretrained=sources.get(init), resume=resume,
                     progress=progress, manifest=manifest, cases=cases)
            for init, fold in overall]


def _pretrained_per_init(pretrained: Any, inits: Sequence[str]) -> dict[str, Path]:
    """``pretrained`` as {init: existing file}; checked before any training starts."""
    if pretrained is None:
        return {}
    transferring = [i for i in inits if i != "scratch"]
    if isinstance(pretrained, Mapping):
        unknown = sorted(set(pretrained) - set(transferring))
        if unknown:
            raise ConfigError(f"pretrained names init(s) {unknown} that are not trained here with weights to transfer "
                              f"(lesion.inits {list(inits)}); use keys among {transferring}")
        sources = {str(k): Path(v) for k, v in pretrained.items()}
    else:
        if not transferring:
            raise ConfigError(f"pretrained={pretrained} but lesion.inits {list(inits)} has no init that transfers weights; "
                              "add 'sap' or 'ssl', or drop pretrained")
        sources = {i: Path(pretrained) for i in transferring}
    for init, path in sources.items():
        if not path.is_file():
            raise ConfigError(f"pretrained checkpoint for init '{init}' not found: {path}; pass an existing .pt file "
                              "(a sapkit model_final.pt or a Tang-layout SSL checkpoint)")
    return sources


def folds_table(results: Sequence[FoldResult]) -> pd.DataFrame:
    """One row per model: ``init, fold, status, training patients, predicted scans, folder``.

    Examples
    --------
    >>> rd = RunDir("run")
    >>> r = FoldResult("sap", "0", rd.lesion("sap", 0).path, (rd.probability_map("sap", "p1_s0"),), 4, "trained")
    >>> table = folds_table([r])
    >>> table.loc[0, "folder"], int(table.loc[0, "training patients"]), int(table.loc[0, "predicted scans"])
    ('run/lesion/sap/fold_0', 4, 1)
    """
    return pd.DataFrame([{"init": r.init, "fold": r.fold, "status": r.status, "training patients": r.n_train_subjects,
                          "predicted scans": len(r.predictions), "folder": r.model_dir.as_posix()} for r in results],
                        columns=["init", "fold", "status", "training patients", "predicted scans", "folder"])
