"""Divergence guard of the training loop: stop at the first non-finite loss, gradient or weight.

:func:`sapkit.training.engine.fit` calls :func:`check_step` after every backward pass (loss terms
and, without AMP, every gradient) and :func:`check_weights` after every optimiser step. The first
NaN/inf raises :class:`~sapkit.errors.TrainingError` naming the task, epoch (1-based), step
(1-based within the epoch), what went non-finite and the likely causes — before anything of the
failing epoch is saved, so ``checkpoint_last.pt`` / ``model_best.pt`` keep the last good weights
and no NaN weights are ever written. Under DDP the verdict is all-reduced, so every rank stops at
the same step. With AMP a non-finite *gradient* is normal (the gradient scaler skips that step and
lowers its scale); only losses and weights are checked then.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from sapkit.errors import TrainingError
from sapkit.networks.finite import first_nonfinite

__all__ = ["check_step", "check_weights"]


def _agree(ok: bool, device: torch.device, world_size: int) -> bool:
    """True only if every rank reports ``ok`` (all-reduce MIN; no-op in one process)."""
    if world_size <= 1:
        return ok
    import torch.distributed as dist

    flag = torch.tensor([1 if ok else 0], dtype=torch.int32, device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


def _fail(task: str, epoch: int, step: int, what: str, *, lrs: Mapping[str, float], amp: bool, inputs_finite: bool,
          kept: Path | None) -> TrainingError:
    causes = []
    if not inputs_finite:
        causes.append("the input patch itself holds NaN/inf intensities (check the images and their scaling)")
    lr_text = ", ".join(f"{n} {v:g}" for n, v in lrs.items())
    causes.append(f"a learning rate too high (this step: {lr_text}; lower {task}.lr*)")
    if inputs_finite:
        causes.append("bad input intensities (unscaled or extreme values)")
    if amp:
        causes.append(f"mixed-precision (float16) overflow (try {task}.amp_dtype=bfloat16 or {task}.amp=false)")
    where = (f"the last good checkpoint {kept} was kept" if kept is not None and kept.is_file()
             else "no checkpoint of this run was written")
    return TrainingError(f"{task} training diverged at epoch {epoch}, step {step}: {what} is not finite; likely "
                         f"cause: {'; or '.join(causes)}. Training stopped and {where}; no weights of the failing "
                         "epoch were saved")


def check_step(net: nn.Module, losses: Mapping[str, torch.Tensor], x: torch.Tensor, *, task: str, epoch: int,
               step: int, lrs: Mapping[str, float], amp: bool, world_size: int, kept: Path | None) -> None:
    """Raise :class:`~sapkit.errors.TrainingError` if a loss term (or, without AMP, a gradient) is non-finite.

    Parameters
    ----------
    net : nn.Module
        The (possibly DDP-wrapped) network after ``backward()``.
    losses : mapping of str to tensor
        The step's loss terms.
    x : tensor
        The step's input batch (only read on failure, to name the cause).
    task : str
        Task name for the message.
    epoch, step : int
        1-based epoch and step within the epoch.
    lrs : mapping of str to float
        Learning rate of each optimiser group at this step.
    amp : bool
        Mixed precision on (gradients are then not checked: the gradient scaler handles them).
    world_size : int
        DDP ranks; the verdict is agreed over all of them.
    kept : Path or None
        ``checkpoint_last.pt`` (named in the message when it exists).
    """
    bad = first_nonfinite((f"loss '{k}'", v) for k, v in losses.items())
    if bad is None and not amp:
        bad = first_nonfinite((f"the gradient of {n}", p.grad) for n, p in net.named_parameters())
    if not _agree(bad is None, x.device, world_size):
        inputs_finite = bool(torch.isfinite(x).all())
        raise _fail(task, epoch, step, bad or "a loss or gradient on another rank", lrs=lrs, amp=amp,
                    inputs_finite=inputs_finite, kept=kept)


def check_weights(model: nn.Module, *, task: str, epoch: int, step: int, lrs: Mapping[str, float], amp: bool,
                  world_size: int, kept: Path | None, device: torch.device) -> None:
    """Raise :class:`~sapkit.errors.TrainingError` if the optimiser step left a non-finite weight.

    Same parameters as :func:`check_step` (``model`` unwrapped or DDP-wrapped).
    """
    bad = first_nonfinite((f"the weight {n} after the optimiser step", p) for n, p in model.named_parameters())
    if not _agree(bad is None, device, world_size):
        raise _fail(task, epoch, step, bad or "a weight on another rank", lrs=lrs, amp=amp, inputs_finite=True,
                    kept=kept)
