"""Segmentation pieces shared by the skeleton and lesion tasks: loss step, validation, Dice tables.

* :func:`dice_ce_step` — the training step: MONAI ``DiceCELoss`` (softmax, one-hot labels, the
  background left out of the Dice term) on the network's logits, under autocast when given;
* :func:`evaluate_segmentation` / :func:`segmentation_validator` — validation by MONAI sliding-window
  inference and argmax over whole volumes, scored by mean per-class Dice;
* :func:`per_class_dice_table` — Dice per class of two label maps, ``(gt, pred)`` like every Dice of the kit.

Every Dice here is :func:`sapkit.metrics.dice_per_class`: training curves, validation scores and
the notebooks' tables use the same arithmetic as the evaluation. Label maps are (X, Y, Z) integer
arrays in file voxel order, class 0 = background.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Mapping, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch
from torch import nn

from sapkit.config import InferConfig
from sapkit.errors import SapkitError
from sapkit.metrics import dice_per_class
from sapkit.networks.factory import unwrap
from sapkit.networks.precision import autocast_dtype
from sapkit.training.engine import StepFn, ValFn

__all__ = [
    "per_class_dice_table",
    "evaluate_segmentation",
    "segmentation_validator",
    "dice_ce_step",
]

def _foreground_dice(gt: npt.NDArray, pred: npt.NDArray) -> float:
    """Dice of all foreground classes as one (label > 0)."""
    return dice_per_class(np.asarray(gt) > 0, np.asarray(pred) > 0, classes=[1])[1]


def per_class_dice_table(gt: npt.NDArray, pred: npt.NDArray, *, class_names: dict[int, str], scan_id: str = "",
                         whole: str = "whole skeleton") -> pd.DataFrame:
    """Long table ``scan_id, region, dice``: one row per foreground class plus all foreground as ``whole``.

    Parameters
    ----------
    gt, pred : (X, Y, Z) int arrays
        Reference and predicted label maps on one grid (:func:`sapkit.metrics.dice_per_class`).
    class_names : dict
        Class index → name (index 0 = background is skipped).
    scan_id : str
        Written into every row.
    whole : str
        Region name of the binary foreground Dice (docs/metrics.md §13 "whole skeleton").

    Examples
    --------
    >>> t = per_class_dice_table(np.array([0, 1, 1]), np.array([0, 1, 2]), class_names={0: "bg", 1: "a", 2: "b"})
    >>> t["dice"].round(3).tolist()
    [0.667, 0.0, 1.0]
    """
    classes = [c for c in sorted(class_names) if c != 0]
    per = dice_per_class(gt, pred, classes=classes)
    rows = [{"scan_id": scan_id, "region": class_names[c], "dice": per[c]} for c in classes]
    fg = _foreground_dice(gt, pred)
    rows.append({"scan_id": scan_id, "region": whole, "dice": fg})
    return pd.DataFrame(rows, columns=["scan_id", "region", "dice"])


@torch.no_grad()
def evaluate_segmentation(
    model: nn.Module, cases: Sequence[Any], *, label: str, class_names: dict[int, str], roi: Sequence[int],
    overlap: float = 0.25, sw_batch_size: int = 2, device: str | torch.device = "cpu", amp: bool = False,
    amp_dtype: str = "auto",
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
        x = torch.from_numpy(np.require(case.image, np.float32, ["C_CONTIGUOUS", "WRITEABLE"]))[None].to(device)
        half = autocast_dtype(amp, amp_dtype, x.device)  # None on the CPU
        ctx = torch.autocast("cuda", dtype=half) if half is not None else contextlib.nullcontext()
        with ctx:
            logits = sliding_window_inference(x, tuple(roi), sw_batch_size, model, overlap=overlap)
        pred = logits.argmax(1)[0].cpu().numpy()
        per_case.append(dice_per_class(truth, pred, classes=classes))
        fg.append(_foreground_dice(truth, pred))
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


def segmentation_validator(val_cases: Sequence[Any] | None, *, label: str, class_names: Mapping[int, str],
                           roi: Sequence[int], infer_config: InferConfig) -> ValFn | None:
    """The ``validate`` callable of :func:`sapkit.training.engine.fit` for a segmentation task; None without cases.

    It runs :func:`evaluate_segmentation` with ``infer_config``'s ``overlap``, ``sw_batch_size`` and
    ``amp``/``amp_dtype`` (CUDA only) and scores the model by ``dice_mean``.
    """
    if not val_cases:
        return None
    names = dict(class_names)

    def validate(model: nn.Module, device: torch.device) -> dict[str, float]:
        res = evaluate_segmentation(model, val_cases, label=label, class_names=names, roi=roi,
                                    overlap=infer_config.overlap, sw_batch_size=infer_config.sw_batch_size,
                                    device=device, amp=infer_config.amp, amp_dtype=infer_config.amp_dtype)
        return {"score": res["dice_mean"], **res}

    return validate


def dice_ce_step() -> StepFn:
    """Training step ``step(net, x, y, generator, autocast) -> {"loss": DiceCE}`` of the segmentation tasks.

    MONAI ``DiceCELoss(to_onehot_y=True, softmax=True, include_background=False)`` with smoothing
    1e-5, computed in float32 on logits produced under ``autocast()`` when given.
    """
    from monai.losses import DiceCELoss

    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False, smooth_nr=1e-5, smooth_dr=1e-5)

    def step(net: nn.Module, x: torch.Tensor, y: torch.Tensor | None, gen: torch.Generator,
             autocast: Any) -> dict[str, torch.Tensor]:
        with (autocast() if autocast else contextlib.nullcontext()):
            logits = net(x)
        return {"loss": loss_fn(logits.float(), y)}

    return step
