"""The training engine shared by the skeleton, SSL and lesion tasks (docs/method.md §4).

:func:`fit` owns everything the three tasks share: Adam (weight decay 1e-5) over named parameter
groups, a linear warm-up then cosine learning-rate schedule stepped per epoch
(:func:`lr_factor`), AMP on CUDA only, DDP when launched by ``torchrun`` (gloo on CPU, nccl on
CUDA; only rank 0 writes), validation every ``val_every`` epochs, ``model_best.pt`` /
``model_final.pt`` / ``checkpoint_last.pt``, an atomically rewritten ``log.csv`` (loss, learning
rate per group, validation metrics, seconds per epoch), a ``tqdm`` progress bar, exact resume
(refused when the configuration changed, see :func:`sapkit.training.resume.config_differences`; files a killed run left
half-written in the hidden staging folder are removed), ``MODEL_CARD.md``, and a divergence guard
(:mod:`sapkit.training.divergence`: the first non-finite loss, gradient or weight stops training
before anything of that epoch is saved).
The tasks themselves (networks, losses, validation, data) live in :mod:`sapkit.training.skeleton_task`,
:mod:`sapkit.training.ssl_task` and :mod:`sapkit.training.lesion_task`.

Data come from a *sampler*: any object with ``len(sampler)`` and
``sampler.epoch_samples(epoch) -> list of (image (C, *roi) float32, label (*roi) int or None)``
returning **this process's** samples for ``epoch`` (every DDP rank the same count), deterministic in
(seed, epoch, rank) — e.g. :class:`sapkit.training.skeleton_sampler.PatchSampler` or
:func:`sapkit.training.lesion_sampler.build_sampler`. The engine applies the augmentation of
docs/method.md §4.3 to supervised samples, seeded from (seed, epoch, rank, index) — samplers
must not augment.

Randomness never touches the caller's global state: the model is expected to be initialised from
``seed`` by its builder, the engine runs inside a forked RNG, dropout is re-seeded from
(seed, epoch, rank) at every epoch, and augmentation / SSL corruption use generators seeded from
(seed, epoch, rank, index). A resumed run therefore continues bit-identically on the CPU.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from sapkit.data.augment import augment, augment_rng
from sapkit.io.checkpoints import save_checkpoint
from sapkit.config import Config, LesionConfig, SkeletonConfig, SSLConfig, config_to_dict
from sapkit.networks.precision import autocast_dtype
from sapkit.training.divergence import check_step, check_weights
from sapkit.training.distributed import DistContext, all_mean, barrier, setup_distributed
from sapkit.errors import ConfigError
from sapkit.io.atomic import atomic_write_text, remove_stale_temporaries
from sapkit.io.run_paths import ModelDir
from sapkit.jobs.progress import progress_bar
from sapkit.training.model_card import write_model_card
from sapkit.training.resume import load_resume_checkpoint
from sapkit.networks.factory import memory_format_for, unwrap

__all__ = [
    "TrainResult",
    "StepFn",
    "ValFn",
    "lr_factor",
    "seed_from",
    "fit",
    "read_train_result",
]

_STREAM_DROPOUT, _STREAM_SSL = 202, 203


# ---------------------------------------------------------------------------------------------
# schedule, seeds
def lr_factor(epoch: int, *, warmup_epochs: int, epochs: int) -> float:
    """Learning-rate multiplier of ``epoch`` (0-based): a line from 0, then a cosine to 0.

    ``(epoch + 1) / (warmup_epochs + 1)`` during warm-up; afterwards
    ``½ (1 + cos(π (epoch − W) / (epochs − W)))``, which is 1 at the first post-warm-up epoch and
    would reach 0 at ``epoch = epochs`` (after the last epoch).

    Examples
    --------
    >>> [round(lr_factor(e, warmup_epochs=2, epochs=6), 3) for e in range(6)]
    [0.333, 0.667, 1.0, 0.854, 0.5, 0.146]
    """
    if epoch < warmup_epochs:
        return (epoch + 1) / (warmup_epochs + 1)
    span = max(epochs - warmup_epochs, 1)
    return 0.5 * (1.0 + math.cos(math.pi * (epoch - warmup_epochs) / span))


def seed_from(*parts: int) -> int:
    """A 62-bit seed derived from integers (run seed, stream id, epoch, rank …), for torch generators.

    Examples
    --------
    >>> seed_from(42, 202, 0) == seed_from(42, 202, 0) != seed_from(42, 202, 1)
    True
    """
    return int(np.random.default_rng([int(p) for p in parts]).integers(0, 2**62))


# ---------------------------------------------------------------------------------------------
# the engine
@dataclass(frozen=True)
class TrainResult:
    """Outcome of one :func:`fit` call.

    Attributes
    ----------
    out_dir : Path
        Task folder (``skeleton/``, ``ssl/``, ``lesion/<init>/fold_<k>/``).
    log : pandas.DataFrame
        ``log.csv`` content (row 0 = the untrained network's validation, when validated).
    epochs_done : int
        Completed epochs.
    finished : bool
        Whether all epochs ran (``model_final.pt`` written).
    best_score : float
        Best validation score (Dice mean, or −loss for SSL); NaN if never validated.
    transfer : pandas.DataFrame or None
        Transfer report (lesion task with ``sap``/``ssl`` init).
    """

    out_dir: Path
    log: pd.DataFrame
    epochs_done: int
    finished: bool
    best_score: float
    transfer: pd.DataFrame | None = None

    @property
    def final_path(self) -> Path:
        """``model_final.pt``."""
        return ModelDir(self.out_dir).model("final")

    @property
    def best_path(self) -> Path:
        """``model_best.pt``."""
        return ModelDir(self.out_dir).model("best")


StepFn = Callable[[nn.Module, torch.Tensor, "torch.Tensor | None", torch.Generator, Any], dict[str, torch.Tensor]]
ValFn = Callable[[nn.Module, torch.device], dict[str, float]]


def fit(
    out_dir: str | Path,
    config: Config,
    *,
    task: str,
    model: nn.Module,
    groups: list[dict[str, Any]],
    sampler: Any,
    step: StepFn,
    validate: ValFn | None,
    task_config: SkeletonConfig | SSLConfig | LesionConfig,
    augment_samples: bool,
    card: dict[str, Any],
    resume: bool = False,
    stop_after: int | None = None,
    progress: bool = True,
    transfer: pd.DataFrame | None = None,
    unused_parameters: bool = False,
) -> TrainResult:
    """Train ``model`` on ``sampler``'s patches; the shared loop of every task.

    Parameters
    ----------
    out_dir : str or Path
        Task folder; created.
    config : Config
        Resolved configuration (``seed``, ``device``, ``augment`` and the task section).
    task : {"skeleton", "ssl", "lesion"}
        Name written to logs, checkpoints and the model card; also the config section compared
        on resume.
    model : nn.Module
        Network on the CPU (moved to the device here).
    groups : list of dict
        Optimiser parameter groups, each with ``name``, ``params``, ``lr`` (peak learning rate).
    sampler : object
        ``len()`` and ``epoch_samples(epoch)`` (see the module docstring).
    step : callable
        ``step(model, images, labels, generator, autocast) -> {"loss": tensor, ...}``.
    validate : callable or None
        ``validate(unwrapped_model, device) -> {"score": float, ...}``; higher score = better.
    task_config : object
        Section with ``epochs``, ``warmup_epochs``, ``batch_size``, ``val_every``, ``amp``,
        ``weight_decay``.
    augment_samples : bool
        Apply the docs/method.md §4.3 augmentation (supervised tasks).
    card : dict
        Facts for ``MODEL_CARD.md``: ``summary``, ``label_map``, ``data``, ``roi``, ``training``,
        ``intended_use``, ``limits`` (:func:`sapkit.training.model_card.write_model_card`).
    resume : bool
        Continue from ``checkpoint_last.pt`` (or a finished ``model_final.pt``) if present.
    stop_after : int, optional
        Return after this many completed epochs (time-boxed sessions; resume later).
    progress : bool
        Show a tqdm bar (rank 0).
    transfer : DataFrame, optional
        Transfer report to carry in the result.
    unused_parameters : bool
        Some parameters of ``model`` receive no gradient in a step (DDP's ``find_unused_parameters``;
        e.g. the SSL model, whose losses use only the backbone's encoder). Same numbers, one more
        graph traversal per step under DDP; no effect in one process.

    Returns
    -------
    TrainResult

    Raises
    ------
    ConfigError
        Invalid epochs/batch settings, or on resume a configuration that differs from the
        checkpoint's (:func:`sapkit.training.resume.config_differences`).
    CheckpointError
        On resume, an unsafe checkpoint or one of another task.
    TrainingError
        A loss, gradient or weight became non-finite (:mod:`sapkit.training.divergence`); nothing of the
        failing epoch is saved, the previous ``checkpoint_last.pt`` / ``model_best.pt`` stay.
    """
    out_dir = Path(out_dir)
    tc = task_config
    if tc.epochs < 1 or tc.batch_size < 1 or tc.val_every < 1 or tc.warmup_epochs < 0:
        raise ConfigError(f"{task}: epochs, batch_size and val_every must be >= 1 and warmup_epochs >= 0, got "
                          f"{tc.epochs}, {tc.batch_size}, {tc.val_every}, {tc.warmup_epochs}")
    d = setup_distributed(config.device)
    try:
        with torch.random.fork_rng(devices=[d.device] if d.device.type == "cuda" else []):
            return _fit(out_dir, config, d, task=task, model=model, groups=groups, sampler=sampler, step=step,
                        validate=validate, tc=tc, augment_samples=augment_samples, card=card, resume=resume,
                        stop_after=stop_after, progress=progress, transfer=transfer,
                        unused_parameters=unused_parameters)
    finally:
        if d.owns_group:
            import torch.distributed as dist

            dist.destroy_process_group()


def _fit(out_dir: Path, config: Config, d: DistContext, *, task: str, model: nn.Module, groups: list[dict[str, Any]],
         sampler: Any, step: StepFn, validate: ValFn | None, tc: SkeletonConfig | SSLConfig | LesionConfig, augment_samples: bool, card: dict[str, Any],
         resume: bool, stop_after: int | None, progress: bool, transfer: pd.DataFrame | None,
         unused_parameters: bool) -> TrainResult:
    layout = memory_format_for(d.device)
    model.to(d.device, memory_format=layout)
    optimizer = torch.optim.Adam(groups, lr=groups[0]["lr"], weight_decay=tc.weight_decay)
    for g in optimizer.param_groups:
        g.setdefault("initial_lr", g["lr"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda e: lr_factor(e, warmup_epochs=tc.warmup_epochs, epochs=tc.epochs))
    half = autocast_dtype(tc.amp, tc.amp_dtype, d.device)  # None on the CPU (sapkit.networks.precision)
    use_amp = half == torch.float16  # a gradient scaler only for float16; bfloat16 has float32's range
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    autocast = (lambda: torch.autocast("cuda", dtype=half)) if half is not None else None
    names = [g.get("name", f"group{i}") for i, g in enumerate(optimizer.param_groups)]

    md = ModelDir(out_dir)
    start, best, rows = 0, float("nan"), []
    ck = load_resume_checkpoint(out_dir, config, d.device, task=task, augment_samples=augment_samples) if resume else None
    if resume and d.is_main:  # half-written files of the killed run (never read; see atomic_path)
        remove_stale_temporaries(out_dir)
    if ck is not None:
        unwrap(model).load_state_dict(ck["state_dict"])
        optimizer.load_state_dict(ck["optimizer"])
        scheduler.load_state_dict(ck["scheduler"])
        if ck.get("scaler"):
            scaler.load_state_dict(ck["scaler"])
        start = int(ck["epoch"])
        best = float(ck["extra"].get("best_score", float("nan")))
        if md.log_csv.is_file():
            old = pd.read_csv(md.log_csv)
            rows = old[old["epoch"] <= start].to_dict("records")
    net: nn.Module = model
    if d.world_size > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[d.device.index] if d.device.type == "cuda" else None,
                                                  find_unused_parameters=unused_parameters)

    def log_row(epoch: int, losses: dict[str, float], lrs: list[float], val: dict[str, float], seconds: float) -> None:
        row: dict[str, Any] = {"epoch": epoch, **losses}
        row.update({f"lr_{n}": lr for n, lr in zip(names, lrs)})
        row.update({f"val_{k}": v for k, v in val.items()})
        row["seconds"] = seconds
        rows.append(row)
        if d.is_main:
            atomic_write_text(md.log_csv, pd.DataFrame(rows).to_csv(index=False))

    def state(epoch: int) -> dict[str, Any]:
        rng = {"torch": torch.get_rng_state(), "scheme": [int(config.seed), _STREAM_DROPOUT, epoch]}
        if d.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(d.device)
        return dict(state_dict=unwrap(model).state_dict(), epoch=epoch, optimizer=optimizer.state_dict(),
                    scheduler=scheduler.state_dict(), scaler=scaler.state_dict() if use_amp else None, rng=rng,
                    config=config_to_dict(config), extra={"task": task, "best_score": best, "world_size": d.world_size})

    if d.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    if start == 0 and validate is not None:
        val0 = validate(unwrap(model), d.device) if d.is_main else {}
        log_row(0, {}, [float("nan")] * len(names), val0, 0.0)
        barrier(d)
    end = tc.epochs if stop_after is None else min(tc.epochs, int(stop_after))
    bar = progress_bar(range(start, end), desc=task, unit="epoch", disable=not (progress and d.is_main),
                       initial=start, total=tc.epochs)
    for epoch in bar:
        t0 = time.perf_counter()
        torch.manual_seed(seed_from(config.seed, _STREAM_DROPOUT, epoch, d.rank))
        net.train()
        samples = sampler.epoch_samples(epoch)
        sums: dict[str, float] = {}
        n_batches = 0
        for b in range(0, len(samples), tc.batch_size):
            chunk = samples[b:b + tc.batch_size]
            images, labels = [], []
            for j, (image, label) in enumerate(chunk):
                if augment_samples:
                    image, label = augment(np.asarray(image), None if label is None else np.asarray(label),
                                           config.augment, rng=augment_rng(config.seed, epoch, d.rank * 1_000_003 + b + j))
                images.append(torch.from_numpy(np.require(image, np.float32, ["C_CONTIGUOUS", "WRITEABLE"])))
                if label is not None:
                    labels.append(torch.from_numpy(np.ascontiguousarray(label).astype(np.int64)))
            x = torch.stack(images).to(d.device, memory_format=layout)
            y = torch.stack(labels)[:, None].to(d.device) if labels else None
            gen = torch.Generator().manual_seed(seed_from(config.seed, _STREAM_SSL, epoch, d.rank, b))
            optimizer.zero_grad(set_to_none=True)
            losses = step(net, x, y, gen, autocast)
            scaler.scale(losses["loss"]).backward()
            where = dict(task=task, epoch=epoch + 1, step=n_batches + 1, amp=use_amp, world_size=d.world_size,
                         lrs={n: g["lr"] for n, g in zip(names, optimizer.param_groups)}, kept=md.checkpoint_last)
            check_step(net, losses, x, **where)
            scaler.step(optimizer)
            scaler.update()
            check_weights(model, device=d.device, **where)
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            n_batches += 1
        epoch_losses = all_mean({k: v / max(n_batches, 1) for k, v in sums.items()}, d)
        lrs = [g["lr"] for g in optimizer.param_groups]
        scheduler.step()
        done = epoch + 1
        val: dict[str, float] = {}
        if validate is not None and (done % tc.val_every == 0 or done == tc.epochs):
            if d.is_main:
                val = validate(unwrap(model), d.device)
                if math.isnan(best) or val["score"] > best:
                    best = val["score"]
                    save_checkpoint(md.model("best"), **state(done))
            barrier(d)
        log_row(done, epoch_losses, lrs, val, time.perf_counter() - t0)
        if d.is_main:
            save_checkpoint(md.checkpoint_last, **state(done))
            bar.set_postfix(loss=f"{epoch_losses.get('loss', float('nan')):.4f}")
        barrier(d)
    bar.close()
    done = max(start, end)
    finished = done >= tc.epochs
    if finished and d.is_main:
        save_checkpoint(md.model("final"), **state(tc.epochs))
        md.checkpoint_last.unlink(missing_ok=True)
        write_model_card(out_dir, task=task, config=config, log=pd.DataFrame(rows), card=card, best_score=best)
    barrier(d)
    return TrainResult(out_dir=out_dir, log=pd.DataFrame(rows), epochs_done=done, finished=finished,
                       best_score=best, transfer=transfer)


def read_train_result(out_dir: str | Path) -> TrainResult:
    """Rebuild the :class:`TrainResult` of a task folder from its files (no checkpoint is loaded).

    ``epochs_done`` is the last epoch of ``log.csv``, ``finished`` whether ``model_final.pt``
    exists, ``best_score`` the highest ``val_score`` of a trained epoch (NaN if none), and
    ``transfer`` the ``transfer.csv`` table (its ``source``/``layout``/``remaps`` columns back in
    ``attrs``) or None.

    Parameters
    ----------
    out_dir : str or Path
        A folder written by :func:`fit`.

    Returns
    -------
    TrainResult
    """
    out_dir = Path(out_dir)
    md = ModelDir(out_dir)
    log = pd.read_csv(md.log_csv) if md.log_csv.is_file() else pd.DataFrame(columns=["epoch"])
    trained = log[log["epoch"] >= 1] if len(log) else log
    scores = trained["val_score"].dropna() if "val_score" in trained.columns else pd.Series(dtype=float)
    transfer = None
    if md.transfer_csv.is_file():
        table = pd.read_csv(md.transfer_csv)
        meta = {c: (str(table[c].iloc[0]) if len(table) else "") for c in ("source", "layout", "remaps") if c in table}
        transfer = table.drop(columns=list(meta))
        remaps = meta.get("remaps", "none")
        transfer.attrs.update(source=meta.get("source", ""), layout=meta.get("layout", ""),
                              remaps=[] if remaps in ("none", "", "nan") else remaps.split(";"))
    return TrainResult(out_dir=out_dir, log=log, epochs_done=int(log["epoch"].max()) if len(log) else 0,
                       finished=md.model("final").is_file(),
                       best_score=float(scores.max()) if len(scores) else float("nan"), transfer=transfer)
