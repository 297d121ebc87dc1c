"""The downstream task: fine-tune a 2-class lesion model from scratch, SSL or SAP weights.

:func:`train_lesion` builds the lesion network, transfers the pretrained weights for ``ssl``/``sap``
(:func:`sapkit.networks.transfer.transfer_weights`, reported in ``transfer.csv``), sets the
discriminative learning rates of the init (:func:`sapkit.networks.transfer.lesion_param_groups`) and
trains through the shared loop :func:`sapkit.training.engine.fit` on the patches of a lesion sampler
(:func:`sapkit.training.lesion_sampler.build_sampler`). The cross-validation protocol (which patients
train and which are predicted) is :func:`sapkit.training.cross_validation.finetune`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from sapkit.config import Config
from sapkit.errors import CheckpointError, ConfigError
from sapkit.io.run_paths import RunDir
from sapkit.label_maps import LESION_CLASSES
from sapkit.networks.factory import build_model, check_roi_fits
from sapkit.networks.transfer import INITS, lesion_param_groups, save_transfer_report, transfer_weights, zero_head
from sapkit.training._task_inputs import rank_and_world
from sapkit.training.engine import TrainResult, fit
from sapkit.training.segmentation import dice_ce_step, segmentation_validator

__all__ = ["train_lesion"]


def train_lesion(
    run_dir: str | Path, config: Config, *, init: str, fold: str | int, train_cases: Sequence[Any],
    val_cases: Sequence[Any] | None, sampler: Any, pretrained: str | Path | None = None, resume: bool = False,
    stop_after: int | None = None, progress: bool = True,
) -> TrainResult:
    """Fine-tune a 2-class lesion model into ``run_dir/lesion/<init>/fold_<fold>``.

    Parameters
    ----------
    run_dir : str or Path
        Run folder.
    config : Config
        Uses ``model``, ``augment``, ``lesion`` (epochs, learning rates per init, …), ``infer``.
    init : {"scratch", "ssl", "sap"}
        Initialisation. ``sap``/``ssl`` read ``pretrained`` or, by default,
        ``run_dir/skeleton/model_final.pt`` / ``run_dir/ssl/model_final.pt``; the transfer report
        is written as ``transfer.csv``.
    fold : str or int
        Fold id (``0``…) or ``tune``.
    train_cases, val_cases : sequence of Case
        Patients (for the model card; ``val_cases`` are validated by sliding window, may be None).
    sampler : object
        Lesion patch sampler (e.g. :func:`sapkit.training.lesion_sampler.build_sampler`), already built for
        this process's rank.
    pretrained : str or Path, optional
        Another checkpoint (any layout of :func:`sapkit.io.checkpoints.import_weights`).

    Returns
    -------
    TrainResult
        With ``transfer`` set for ``sap``/``ssl``.
    """
    if init not in INITS:
        raise ConfigError(f"init must be one of {INITS}, got {init!r}")
    run_dir = Path(run_dir)
    lc = config.lesion
    rd = RunDir(run_dir)
    out = rd.lesion(init, fold)
    out_dir = out.path
    model = build_model(config.model, 2, seed=config.seed)
    check_roi_fits(lc.roi, model, what="lesion.roi")
    report = None
    source = ""
    if init != "scratch":
        src = Path(pretrained) if pretrained else (rd.skeleton if init == "sap" else rd.ssl).model("final")
        if not src.is_file():
            raise CheckpointError(f"init '{init}' needs pretrained weights at {src}; train them first "
                                  f"(`sapkit train {'skeleton' if init == 'sap' else 'ssl'}`) or pass --pretrained FILE")
        report = transfer_weights(model, src, init=init)
        source = f" Initialised from {src} ({report.attrs['n_loaded']} tensors loaded; see transfer.csv)."
        if lc.head_init == "zero":  # docs/reproducibility.md §5: a random head can leave the model on the empty plateau
            source += f" Output head set to zero ({zero_head(model)} parameters; lesion.head_init=zero)."
        if rank_and_world()[0] == 0:
            out_dir.mkdir(parents=True, exist_ok=True)
            save_transfer_report(report, out.transfer_csv)
    names = dict(LESION_CLASSES)
    card = {"summary": f"Bone-metastasis (lesion) segmentation, init '{init}', fold {fold}.{source}",
            "label_map": names, "roi": lc.roi,
            "data": f"{len(train_cases)} training patient scans, {len(val_cases or [])} validation scans; "
                    f"sampler {type(sampler).__name__} ({len(sampler)} patches per epoch and rank).",
            "training": f"DiceCE, Adam wd {lc.weight_decay:g}, discriminative learning rates per init (docs/method.md §4.2), "
                        f"warm-up {lc.warmup_epochs} then cosine, batch {lc.batch_size}, docs/method.md §4.3 augmentation.",
            "limits": "Threshold the probability map with the tuned threshold (eval/threshold.json); "
                      "trained on few patients; not for clinical use."}
    return fit(out_dir, config, task="lesion", model=model, groups=lesion_param_groups(model, init=init, lesion_config=lc),
               sampler=sampler, step=dice_ce_step(),
               validate=segmentation_validator(val_cases, label="lesion", class_names=names, roi=lc.roi,
                                               infer_config=config.infer), task_config=lc,
               augment_samples=True, card=card, resume=resume, stop_after=stop_after, progress=progress,
               transfer=report)
