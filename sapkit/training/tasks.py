"""The three training tasks of SAP (SPEC §4): skeleton, self-supervised and lesion models.

Each task builds its network, parameter groups, loss step, validation and model-card facts, then
hands them to the shared loop :func:`sapkit.training.engine.fit` (optimiser, schedule, AMP, DDP,
checkpoints, ``log.csv``, exact resume, ``MODEL_CARD.md``):

* :func:`train_skeleton` — 10-class skeleton model on the healthy cohort (class-balanced
  :class:`~sapkit.training.skeleton_sampler.PatchSampler` patches), validated by sliding-window argmax
  per-bone Dice (:func:`evaluate_segmentation`: plain argmax, no connected-component vote);
* :func:`train_ssl` — Tang et al. pretext tasks on random body patches, validated by the loss
  on fixed validation patches;
* :func:`train_lesion` — 2-class lesion model initialised from scratch, SSL or SAP weights
  (:mod:`sapkit.networks.transfer`); cross-validation folds are run by :func:`sapkit.training.cross_validation.finetune`.

Task folders: :func:`task_dir`. :class:`~sapkit.training.engine.TrainResult` and
:class:`~sapkit.training.skeleton_sampler.PatchSampler` are re-exported here because every task returns
the one and the skeleton/SSL tasks sample with the other.
"""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch
from torch import nn

from sapkit.config import Config
from sapkit.training.engine import FINAL_MODEL, StepFn, TrainResult, ValFn, fit, seed_from
from sapkit.errors import CheckpointError, ConfigError, SapkitError
from sapkit.labels.label_maps import LESION_CLASSES, SKELETON_CLASSES
from sapkit.networks.factory import backbone_of, build_model, downsample_factor, unwrap
from sapkit.training.skeleton_sampler import PatchSampler
from sapkit.networks.transfer import lesion_param_groups, param_groups, save_transfer_report, transfer_weights

__all__ = [
    "PatchSampler",
    "TrainResult",
    "segmentation_dice",
    "per_class_dice_table",
    "evaluate_segmentation",
    "train_skeleton",
    "train_ssl",
    "train_lesion",
    "task_dir",
]

_STREAM_VAL = 204


# ---------------------------------------------------------------------------------------------
# validation metrics
def segmentation_dice(pred: npt.NDArray, truth: npt.NDArray, classes: Sequence[int]) -> dict[int, float]:
    """Dice per class of two label maps of the same shape; NaN where a class is absent in both."""
    if pred.shape != truth.shape:
        raise SapkitError(f"prediction shape {pred.shape} != label shape {truth.shape}")
    out = {}
    for c in classes:
        p, t = pred == c, truth == c
        denom = int(p.sum()) + int(t.sum())
        out[int(c)] = 2.0 * int((p & t).sum()) / denom if denom else float("nan")
    return out


def per_class_dice_table(pred: npt.NDArray, truth: npt.NDArray, *, class_names: dict[int, str], scan_id: str = "",
                         whole: str = "whole skeleton") -> pd.DataFrame:
    """Long table ``scan_id, region, dice``: one row per foreground class plus all foreground as ``whole``.

    Parameters
    ----------
    pred, truth : (X, Y, Z) int arrays
        Predicted and reference label maps.
    class_names : dict
        Class index → name (index 0 = background is skipped).
    scan_id : str
        Written into every row.
    whole : str
        Region name of the binary foreground Dice (SPEC §6 "whole skeleton").

    Examples
    --------
    >>> t = per_class_dice_table(np.array([0, 1, 2]), np.array([0, 1, 1]), class_names={0: "bg", 1: "a", 2: "b"})
    >>> t["dice"].round(3).tolist()
    [0.667, 0.0, 1.0]
    """
    classes = [c for c in sorted(class_names) if c != 0]
    per = segmentation_dice(pred, truth, classes)
    rows = [{"scan_id": scan_id, "region": class_names[c], "dice": per[c]} for c in classes]
    fg = segmentation_dice((np.asarray(pred) > 0).astype(np.uint8), (np.asarray(truth) > 0).astype(np.uint8), [1])[1]
    rows.append({"scan_id": scan_id, "region": whole, "dice": fg})
    return pd.DataFrame(rows, columns=["scan_id", "region", "dice"])


@torch.no_grad()
def evaluate_segmentation(
    model: nn.Module, cases: Sequence[Any], *, label: str, class_names: dict[int, str], roi: Sequence[int],
    overlap: float = 0.25, sw_batch_size: int = 2, device: str | torch.device = "cpu", amp: bool = False,
) -> dict[str, float]:
    """Sliding-window argmax on whole volumes; mean per-class Dice over cases.

    Returns
    -------
    dict
        ``dice_<name>`` per foreground class (NaN if absent everywhere), ``dice_mean`` (mean over
        the classes present) and ``dice_foreground`` (all foreground classes as one).
    """
    from monai.inferers import sliding_window_inference

    model = unwrap(model)
    was_training = model.training
    model.eval()
    classes = [c for c in sorted(class_names) if c != 0]
    per_case: list[dict[int, float]] = []
    fg: list[float] = []
    for case in cases:
        truth = getattr(case, label)
        if truth is None:
            raise SapkitError(f"validation case {case.scan_id} has no {label} label")
        x = torch.from_numpy(np.ascontiguousarray(case.image))[None].to(device)
        ctx = torch.autocast("cuda", dtype=torch.float16) if amp else contextlib.nullcontext()
        with ctx:
            logits = sliding_window_inference(x, tuple(roi), sw_batch_size, model, overlap=overlap)
        pred = logits.argmax(1)[0].cpu().numpy()
        per_case.append(segmentation_dice(pred, np.asarray(truth), classes))
        fg.append(segmentation_dice((pred > 0).astype(np.uint8), (np.asarray(truth) > 0).astype(np.uint8), [1])[1])
    model.train(was_training)
    result: dict[str, float] = {}
    for c in classes:
        vals = [d[c] for d in per_case if not math.isnan(d[c])]
        result[f"dice_{class_names[c].replace(' ', '_')}"] = float(np.mean(vals)) if vals else float("nan")
    present = [v for k, v in result.items() if not math.isnan(v)]
    result["dice_mean"] = float(np.mean(present)) if present else float("nan")
    fgv = [v for v in fg if not math.isnan(v)]
    result["dice_foreground"] = float(np.mean(fgv)) if fgv else float("nan")
    return result


# ---------------------------------------------------------------------------------------------
# tasks
def task_dir(run_dir: str | Path, task: str, *, init: str | None = None, fold: str | int | None = None) -> Path:
    """``run_dir/skeleton``, ``run_dir/ssl`` or ``run_dir/lesion/<init>/fold_<fold>``."""
    if task in ("skeleton", "ssl"):
        return Path(run_dir) / task
    if task == "lesion":
        if init is None or fold is None:
            raise ConfigError("the lesion task folder needs init and fold")
        return Path(run_dir) / "lesion" / init / f"fold_{fold}"
    raise ConfigError(f"task must be skeleton, ssl or lesion, got {task!r}")


def _dice_ce() -> nn.Module:
    from monai.losses import DiceCELoss

    return DiceCELoss(to_onehot_y=True, softmax=True, include_background=False, smooth_nr=1e-5, smooth_dr=1e-5)


def _seg_step(loss_fn: nn.Module) -> StepFn:
    def step(net: nn.Module, x: torch.Tensor, y: torch.Tensor | None, gen: torch.Generator, autocast: Any) -> dict[str, torch.Tensor]:
        with (autocast() if autocast else contextlib.nullcontext()):
            logits = net(x)
        return {"loss": loss_fn(logits.float(), y)}

    return step


def _healthy_cases(run_dir: Path, config: Config, data: str | Path | None, *, need_skeleton: bool) -> tuple[list, list, str]:
    from sapkit.data.cases import load_cases
    from sapkit.data.manifest import load_manifest
    from sapkit.io.run_paths import data_dir
    from sapkit.data.splits import load_splits

    manifest = load_manifest(data_dir(run_dir, data))
    splits = load_splits(run_dir)
    pct = tuple(config.preprocess.clip_percentiles)
    train = load_cases(manifest, cohort="healthy", subjects=splits["healthy"]["train"], percentiles=pct)
    val = load_cases(manifest, cohort="healthy", subjects=splits["healthy"]["val"], percentiles=pct)
    if need_skeleton:
        missing = [c.scan_id for c in train + val if c.skeleton is None]
        if missing:
            raise SapkitError(f"healthy scans {missing[:5]} have no skeleton_label in {manifest.path}; "
                              "label them (notebook 01) or remove them from the manifest")
    desc = (f"manifest '{manifest.name}' ({manifest.path}); healthy cohort: {len(train)} training scans of "
            f"{len(set(c.subject_id for c in train))} subjects, {len(val)} validation scans of "
            f"{len(set(c.subject_id for c in val))} subjects (splits.json; no subject in both)")
    return train, val, desc


def _check_roi(roi: Sequence[int], model: nn.Module, what: str) -> None:
    f = downsample_factor(model)
    if any(r % f for r in roi):
        raise ConfigError(f"{what}.roi {list(roi)} must be divisible by {f} for the {backbone_of(model)} backbone; "
                          f"use e.g. {[max(f, r // f * f) for r in roi]}")


def _resolve_cases(run_dir: Path, config: Config, data: str | Path | None, train_cases: Sequence[Any] | None,
                   val_cases: Sequence[Any] | None, *, need_skeleton: bool) -> tuple[Sequence[Any], Any, str]:
    """Cases given directly, or the healthy cohort of the run's manifest; with a description for the model card."""
    if train_cases is None:
        return _healthy_cases(run_dir, config, data, need_skeleton=need_skeleton)
    return train_cases, val_cases, f"{len(train_cases)} training and {len(val_cases or [])} validation scans given directly"


def _rank_and_world() -> tuple[int, int]:
    """This process's DDP rank and the number of ranks (torchrun's RANK / WORLD_SIZE; 0 / 1 otherwise)."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def train_skeleton(
    run_dir: str | Path, config: Config, *, data: str | Path | None = None, resume: bool = False,
    train_cases: Sequence[Any] | None = None, val_cases: Sequence[Any] | None = None,
    stop_after: int | None = None, progress: bool = True,
) -> TrainResult:
    """Train the 10-class skeleton model (SAP step 1) into ``run_dir/skeleton``.

    Parameters
    ----------
    run_dir : str or Path
        Run folder holding ``splits.json`` and (unless ``data``) ``data/manifest.yaml``.
    config : Config
        Uses ``model``, ``augment``, ``skeleton``, ``infer.overlap``, ``preprocess``, ``seed``, ``device``.
    data : str or Path, optional
        Manifest (or its folder); default ``run_dir/data``.
    resume : bool
        Continue an interrupted run exactly.
    train_cases, val_cases : sequence of Case, optional
        Use these instead of reading the manifest and splits (tests, notebooks with custom data).
    stop_after : int, optional
        Stop after this many epochs (resume later).
    progress : bool
        tqdm bar.

    Returns
    -------
    TrainResult
    """
    run_dir = Path(run_dir)
    sc = config.skeleton
    train_cases, val_cases, desc = _resolve_cases(run_dir, config, data, train_cases, val_cases,
                                                  need_skeleton=True)
    model = build_model(config.model, sc.num_classes, seed=config.seed)
    _check_roi(sc.roi, model, "skeleton")
    d_rank, d_world = _rank_and_world()
    sampler = PatchSampler(train_cases, roi=sc.roi, samples_per_volume=sc.samples_per_volume, label="skeleton",
                           seed=config.seed, rank=d_rank, world_size=d_world)
    names = {k: v for k, v in SKELETON_CLASSES.items() if k < sc.num_classes}
    validate = _seg_validator(val_cases, "skeleton", names, config, sc.roi)
    card = {"summary": "Skeleton segmentation: background + 9 bone regions (SAP pretraining, SPEC §1).",
            "label_map": names, "data": desc, "roi": sc.roi,
            "training": f"DiceCE (background excluded from Dice), Adam lr {sc.lr:g} wd {sc.weight_decay:g}, "
                        f"warm-up {sc.warmup_epochs} then cosine, batch {sc.batch_size}, class-balanced patches "
                        f"({sc.samples_per_volume} per scan and epoch), SPEC §4 augmentation.",
            "intended_use": "Source of SAP weights for the lesion model; skeleton masks for research."}
    return fit(task_dir(run_dir, "skeleton"), config, task="skeleton", model=model,
               groups=param_groups(model, lr_encoder=sc.lr, lr_decoder=sc.lr), sampler=sampler,
               step=_seg_step(_dice_ce()), validate=validate, task_config=sc, augment_samples=True, card=card,
               resume=resume, stop_after=stop_after, progress=progress)


def _seg_validator(val_cases: Sequence[Any] | None, label: str, names: dict[int, str], config: Config,
                   roi: Sequence[int]) -> ValFn | None:
    if not val_cases:
        return None

    def validate(model: nn.Module, device: torch.device) -> dict[str, float]:
        res = evaluate_segmentation(model, val_cases, label=label, class_names=names, roi=roi,
                                    overlap=config.infer.overlap, sw_batch_size=config.infer.sw_batch_size,
                                    device=device, amp=bool(config.infer.amp) and device.type == "cuda")
        return {"score": res["dice_mean"], **res}

    return validate


def train_ssl(
    run_dir: str | Path, config: Config, *, data: str | Path | None = None, resume: bool = False,
    train_cases: Sequence[Any] | None = None, val_cases: Sequence[Any] | None = None,
    stop_after: int | None = None, progress: bool = True,
) -> TrainResult:
    """Self-supervised pretraining (Tang et al.) on the healthy scans into ``run_dir/ssl``.

    Same parameters as :func:`train_skeleton`; uses ``config.ssl``. The checkpoint's
    ``state_dict`` holds ``backbone.*`` (the segmentation network) and the SSL heads;
    :func:`sapkit.networks.transfer.transfer_weights` with ``init="ssl"`` strips ``backbone.`` and copies
    the SSL-trained modules only.
    """
    from sapkit.training.ssl import build_ssl_model, ssl_losses

    run_dir = Path(run_dir)
    sc = config.ssl
    train_cases, val_cases, desc = _resolve_cases(run_dir, config, data, train_cases, val_cases,
                                                  need_skeleton=False)
    model = build_ssl_model(config, seed=config.seed)
    _check_roi(sc.roi, model.backbone, "ssl")
    d_rank, d_world = _rank_and_world()
    sampler = PatchSampler(train_cases, roi=sc.roi, samples_per_volume=sc.samples_per_volume, label=None,
                           seed=config.seed, rank=d_rank, world_size=d_world)

    def step(net: nn.Module, x: torch.Tensor, y: Any, gen: torch.Generator, autocast: Any) -> dict[str, torch.Tensor]:
        ls = ssl_losses(net, x, sc, generator=gen, autocast=autocast)
        return {"loss": ls.total, "loss_rotation": ls.rotation, "loss_contrastive": ls.contrastive,
                "loss_reconstruction": ls.reconstruction}

    validate = None
    if val_cases:
        val_sampler = PatchSampler(val_cases, roi=sc.roi, samples_per_volume=sc.samples_per_volume, label=None,
                                   seed=config.seed + _STREAM_VAL)
        val_patches = val_sampler.epoch_samples(0)

        @torch.no_grad()
        def validate(m: nn.Module, device: torch.device) -> dict[str, float]:
            was = m.training
            m.eval()
            gen = torch.Generator().manual_seed(seed_from(config.seed, _STREAM_VAL))
            out: dict[str, float] = {}
            for b in range(0, len(val_patches), max(sc.batch_size, 2)):
                x = torch.stack([torch.from_numpy(np.ascontiguousarray(p[0])) for p in val_patches[b:b + max(sc.batch_size, 2)]]).to(device)
                ls = ssl_losses(m, x, sc, generator=gen)
                for k, v in (("loss", ls.total), ("loss_rotation", ls.rotation), ("loss_contrastive", ls.contrastive),
                             ("loss_reconstruction", ls.reconstruction)):
                    out.setdefault(k, []).append(float(v))  # type: ignore[arg-type]
            m.train(was)
            res = {k: float(np.mean(v)) for k, v in out.items()}  # type: ignore[arg-type]
            return {"score": -res["loss"], **res}

    card = {"summary": "Self-supervised encoder (Tang et al. 2022: rotation, contrastive, masked inpainting) — "
                       "not a segmentation model; its encoder initialises the SSL lesion model.",
            "label_map": {}, "data": desc, "roi": sc.roi,
            "training": f"losses rotation×{sc.loss_weight_rotation:g} + contrastive×{sc.loss_weight_contrastive:g} "
                        f"(temperature {sc.temperature:g}, projection {sc.projection_dim}) + L1 reconstruction×"
                        f"{sc.loss_weight_reconstruction:g} (voxel drop ≤ {sc.drop_ratio:.0%}, swap {sc.swap_ratio:.0%}); "
                        f"Adam lr {sc.lr:g}.",
            "intended_use": "Initialisation of the SSL baseline lesion model."}
    return fit(task_dir(run_dir, "ssl"), config, task="ssl", model=model,
               groups=[{"name": "all", "params": list(model.parameters()), "lr": sc.lr}], sampler=sampler,
               step=step, validate=validate, task_config=sc, augment_samples=False, card=card, resume=resume,
               stop_after=stop_after, progress=progress)


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
    from sapkit.networks.transfer import INITS

    if init not in INITS:
        raise ConfigError(f"init must be one of {INITS}, got {init!r}")
    run_dir = Path(run_dir)
    lc = config.lesion
    out_dir = task_dir(run_dir, "lesion", init=init, fold=fold)
    model = build_model(config.model, 2, seed=config.seed)
    _check_roi(lc.roi, model, "lesion")
    report = None
    source = ""
    if init != "scratch":
        src = Path(pretrained) if pretrained else task_dir(run_dir, "skeleton" if init == "sap" else "ssl") / FINAL_MODEL
        if not src.is_file():
            raise CheckpointError(f"init '{init}' needs pretrained weights at {src}; train them first "
                                  f"(`sapkit train {'skeleton' if init == 'sap' else 'ssl'}`) or pass --pretrained FILE")
        report = transfer_weights(model, src, init=init)
        source = f" Initialised from {src} ({report.attrs['n_loaded']} tensors loaded; see transfer.csv)."
        if int(os.environ.get("RANK", "0")) == 0:
            out_dir.mkdir(parents=True, exist_ok=True)
            save_transfer_report(report, out_dir / "transfer.csv")
    names = dict(LESION_CLASSES)
    card = {"summary": f"Bone-metastasis (lesion) segmentation, init '{init}', fold {fold}.{source}",
            "label_map": names, "roi": lc.roi,
            "data": f"{len(train_cases)} training patient scans, {len(val_cases or [])} validation scans; "
                    f"sampler {type(sampler).__name__} ({len(sampler)} patches per epoch and rank).",
            "training": f"DiceCE, Adam wd {lc.weight_decay:g}, discriminative learning rates per init (SPEC §4), "
                        f"warm-up {lc.warmup_epochs} then cosine, batch {lc.batch_size}, SPEC §4 augmentation.",
            "limits": "Threshold the probability map with the tuned threshold (eval/threshold.json); "
                      "trained on few patients; not for clinical use."}
    return fit(out_dir, config, task="lesion", model=model, groups=lesion_param_groups(model, init=init, lesion_config=lc),
               sampler=sampler, step=_seg_step(_dice_ce()),
               validate=_seg_validator(val_cases, "lesion", names, config, lc.roi), task_config=lc,
               augment_samples=True, card=card, resume=resume, stop_after=stop_after, progress=progress,
               transfer=report)
