"""SAP step 1: the skeleton model — training, and its per-scan Dice on whole scans.

:func:`train_skeleton` trains the 10-class skeleton model (background + 9 bone regions) on the
healthy cohort with class-balanced patches (:class:`~sapkit.training.skeleton_sampler.PatchSampler`)
and the shared loop :func:`sapkit.training.engine.fit`; validation during training is sliding-window
argmax per-bone Dice (:func:`sapkit.training.segmentation.evaluate_segmentation`).

:func:`predict_skeleton` and :func:`skeleton_dice_by_scan` evaluate a trained model on whole scans with
the body-skipping inference of :mod:`sapkit.inference.sliding_window` (plain argmax; the optional
per-component majority vote is off by default: where bones touch, one connected piece would get a
single class) and the Dice of :func:`sapkit.metrics.dice_per_class`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd
from torch import nn

from sapkit.config import Config
from sapkit.errors import SapkitError
from sapkit.io.run_paths import RunDir
from sapkit.label_maps import SKELETON_CLASSES
from sapkit.networks.factory import build_model, check_roi_fits
from sapkit.networks.transfer import param_groups
from sapkit.training._task_inputs import rank_and_world, resolve_cases
from sapkit.training.engine import TrainResult, fit
from sapkit.training.segmentation import dice_ce_step, per_class_dice_table, segmentation_validator
from sapkit.training.skeleton_sampler import PatchSampler

__all__ = ["train_skeleton", "predict_skeleton", "skeleton_dice_by_scan"]


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
    train_cases, val_cases, desc = resolve_cases(run_dir, config, data, train_cases, val_cases, need_skeleton=True)
    model = build_model(config.model, sc.num_classes, seed=config.seed)
    check_roi_fits(sc.roi, model, what="skeleton.roi")
    d_rank, d_world = rank_and_world()
    sampler = PatchSampler(train_cases, roi=sc.roi, samples_per_volume=sc.samples_per_volume, label="skeleton",
                           seed=config.seed, rank=d_rank, world_size=d_world)
    names = {k: v for k, v in SKELETON_CLASSES.items() if k < sc.num_classes}
    validate = segmentation_validator(val_cases, label="skeleton", class_names=names, roi=sc.roi,
                                      infer_config=config.infer)
    card = {"summary": "Skeleton segmentation: background + 9 bone regions (SAP pretraining, docs/method.md §1).",
            "label_map": names, "data": desc, "roi": sc.roi,
            "training": f"DiceCE (background excluded from Dice), Adam lr {sc.lr:g} wd {sc.weight_decay:g}, "
                        f"warm-up {sc.warmup_epochs} then cosine, batch {sc.batch_size}, class-balanced patches "
                        f"({sc.samples_per_volume} per scan and epoch), docs/method.md §4.3 augmentation.",
            "intended_use": "Source of SAP weights for the lesion model; skeleton masks for research."}
    return fit(RunDir(run_dir).skeleton.path, config, task="skeleton", model=model,
               groups=param_groups(model, lr_encoder=sc.lr, lr_decoder=sc.lr), sampler=sampler,
               step=dice_ce_step(), validate=validate, task_config=sc, augment_samples=True, card=card,
               resume=resume, stop_after=stop_after, progress=progress)


def predict_skeleton(model: nn.Module, image: npt.NDArray, config: Config, *,
                     majority_vote: bool = False) -> npt.NDArray[np.int16]:
    """Skeleton label map of one scan: body-skipping sliding-window softmax, then argmax.

    Parameters
    ----------
    model : torch.nn.Module
        Skeleton network (``config.skeleton.num_classes`` outputs), e.g.
        :func:`sapkit.inference.predict.load_model` of ``RunDir(run_dir).skeleton.model()``.
    image : (C, X, Y, Z) float32
        Scaled image (``Case.image``).
    config : Config
        Uses ``skeleton.roi`` (window size, voxels), ``infer.overlap``, ``infer.amp``, ``infer.amp_dtype`` and ``device``.
    majority_vote : bool
        One class per 6-connected bone piece (:func:`sapkit.inference.sliding_window.skeleton_labels`).

    Returns
    -------
    (X, Y, Z) int16
        Labels 0..K-1 on the image's grid.
    """
    from sapkit.inference.sliding_window import predict_probabilities, skeleton_labels

    prob = predict_probabilities(model, image, roi=config.skeleton.roi, overlap=config.infer.overlap,
                                 device=config.device, amp=config.infer.amp, amp_dtype=config.infer.amp_dtype)
    return skeleton_labels(prob, majority_vote=majority_vote)


def skeleton_dice_by_scan(model: nn.Module, cases: Sequence[Any], config: Config, *,
                          majority_vote: bool = False) -> pd.DataFrame:
    """Per-bone and whole-skeleton Dice of ``model`` on each scan (:func:`predict_skeleton`).

    Parameters
    ----------
    model : torch.nn.Module
        Skeleton network.
    cases : sequence of Case
        Scans with a ``skeleton`` reference label map.
    config : Config
        As for :func:`predict_skeleton`.
    majority_vote : bool
        As for :func:`predict_skeleton`.

    Returns
    -------
    DataFrame
        Long table ``scan_id, region, dice`` (:func:`sapkit.training.segmentation.per_class_dice_table`):
        per scan one row per bone region of :data:`sapkit.label_maps.SKELETON_CLASSES` and one
        ``whole skeleton`` row; NaN where a region is absent from both maps. Summarise it with
        :func:`sapkit.evaluation.tables.skeleton_dice_table`.

    Raises
    ------
    SapkitError
        A case without a skeleton label map.
    """
    unlabelled = [c.scan_id for c in cases if getattr(c, "skeleton", None) is None]
    if unlabelled:
        raise SapkitError(f"scans {unlabelled[:5]} have no skeleton label map; evaluate labelled healthy scans "
                          "(load_cases(manifest, cohort='healthy'))")
    tables = [per_class_dice_table(case.skeleton,
                                   predict_skeleton(model, case.image, config, majority_vote=majority_vote),
                                   class_names=dict(SKELETON_CLASSES), scan_id=case.scan_id)
              for case in cases]
    return pd.concat(tables, ignore_index=True)
