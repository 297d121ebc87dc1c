"""One training engine for the skeleton, SSL and lesion tasks (SPEC §4).

The engine (:func:`fit`) owns everything the three tasks share: Adam (weight decay 1e-5) over
named parameter groups, a linear warm-up then cosine learning-rate schedule stepped per epoch
(:func:`lr_factor`), AMP on CUDA only, DDP when launched by ``torchrun`` (gloo on CPU, nccl on
CUDA; only rank 0 writes), validation every ``val_every`` epochs, ``model_best.pt`` /
``model_final.pt`` / ``checkpoint_last.pt``, an atomically rewritten ``log.csv`` (loss, learning
rate per group, validation metrics, seconds per epoch), a ``tqdm`` progress bar, exact resume,
and ``MODEL_CARD.md``.

Data come from a *sampler*: any object with ``len(sampler)`` and
``sampler.epoch_samples(epoch) -> list of (image (C, *roi) float32, label (*roi) int or None)``
returning **this process's** samples for ``epoch`` (every DDP rank the same count), deterministic in
(seed, epoch, rank). :class:`PatchSampler` serves the skeleton (class-balanced) and SSL (random
body) patches; :mod:`sapkit.sampling` serves lesion patches. The engine applies the SPEC §4
augmentation to supervised samples, seeded from (seed, epoch, rank, index) — samplers must not
augment.

Randomness never touches the caller's global state: the model is initialised from ``seed``
inside a forked RNG, dropout is re-seeded from (seed, epoch, rank) at every epoch, and
augmentation / SSL corruption use generators seeded from (seed, epoch, rank, index). A resumed
run therefore continues bit-identically on the CPU.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch
from torch import nn

from sapkit.augment import augment, augment_rng
from sapkit.checkpoints import load_checkpoint, save_checkpoint
from sapkit.config import Config, config_to_dict
from sapkit.errors import CheckpointError, ConfigError, SapkitError
from sapkit.io import atomic_write_text
from sapkit.labelmaps import LESION_CLASSES, SKELETON_CLASSES
from sapkit.models import backbone_of, build_model, downsample_factor, unwrap
from sapkit.transfer import lesion_param_groups, param_groups, save_transfer_report, transfer_weights

__all__ = [
    "PatchSampler",
    "TrainResult",
    "lr_factor",
    "segmentation_dice",
    "per_class_dice_table",
    "evaluate_segmentation",
    "fit",
    "train_skeleton",
    "train_ssl",
    "train_lesion",
    "task_dir",
]

_STREAM_PATCH, _STREAM_DROPOUT, _STREAM_SSL, _STREAM_VAL = 201, 202, 203, 204
LAST, BEST, FINAL = "checkpoint_last.pt", "model_best.pt", "model_final.pt"


# ---------------------------------------------------------------------------------------------
# schedule, metrics
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
# sampler for skeleton and SSL patches
class PatchSampler:
    """Random ROI patches from whole volumes, class-balanced when a label is used.

    Parameters
    ----------
    cases : sequence of Case
        ``image`` (C, X, Y, Z) float32 and the label attribute named by ``label``.
    roi : 3 ints
        Patch size in voxels.
    samples_per_volume : int
        Patches per case and epoch.
    label : str or None
        ``"skeleton"`` (class-balanced: each patch is centred on a random voxel of a class drawn
        uniformly from the classes present in the case, background included — background centres
        are drawn inside the body) or None (SSL: centres inside the body, label None).
    seed, rank, world_size : int
        Sample ``i`` of ``epoch`` is drawn from ``default_rng([seed, 201, epoch, i])``; rank ``r``
        serves samples ``r, r + world_size, …`` (padded so every rank has the same count).
    """

    def __init__(self, cases: Sequence[Any], *, roi: Sequence[int], samples_per_volume: int, label: str | None,
                 seed: int, rank: int = 0, world_size: int = 1) -> None:
        if len(roi) != 3 or min(roi) < 1:
            raise ConfigError(f"roi must be 3 positive voxel counts, got {roi!r}")
        if not cases:
            raise SapkitError("no training cases: check splits.json healthy.train and the manifest")
        self.roi = tuple(int(r) for r in roi)
        self.samples_per_volume = int(samples_per_volume)
        self.label, self.seed, self.rank, self.world_size = label, int(seed), int(rank), int(world_size)
        self._images: list[npt.NDArray[np.float32]] = []
        self._labels: list[npt.NDArray | None] = []
        self._centres: list[dict[int, npt.NDArray[np.int64]]] = []
        for case in cases:
            image = np.asarray(case.image, dtype=np.float32)
            lab = None if label is None else getattr(case, label)
            if label is not None and lab is None:
                raise SapkitError(f"case {case.scan_id} has no {label} label; training needs labelled scans")
            pad = [(0, 0)] + [(0, max(r - n, 0)) for r, n in zip(self.roi, image.shape[1:])]
            if any(p[1] for p in pad):
                image = np.pad(image, pad)
                lab = np.pad(lab, pad[1:]) if lab is not None else None
            self._images.append(image)
            self._labels.append(lab)
            body = np.flatnonzero(image.mean(0) > 0.05)
            centres = {0: body if body.size else np.arange(image[0].size)}
            if lab is not None:
                for c in np.unique(lab):
                    if c != 0:
                        centres[int(c)] = np.flatnonzero(lab == c)
            self._centres.append(centres)
        self._total = len(self._images) * self.samples_per_volume
        self._per_rank = -(-self._total // self.world_size)

    def __len__(self) -> int:
        """Samples per epoch on this rank."""
        return self._per_rank

    def __repr__(self) -> str:
        return (f"PatchSampler(cases={len(self._images)}, roi={self.roi}, samples_per_volume="
                f"{self.samples_per_volume}, label={self.label!r}, rank={self.rank}/{self.world_size})")

    def epoch_samples(self, epoch: int) -> list[tuple[npt.NDArray[np.float32], npt.NDArray | None]]:
        """This rank's patches of ``epoch`` (deterministic in seed, epoch, rank)."""
        order = np.random.default_rng([self.seed, _STREAM_PATCH, int(epoch)]).permutation(self._total)
        padded = np.concatenate([order, order[: self.world_size * self._per_rank - self._total]])
        return [self._sample(epoch, int(i)) for i in padded[self.rank::self.world_size]]

    def _sample(self, epoch: int, i: int) -> tuple[npt.NDArray[np.float32], npt.NDArray | None]:
        rng = np.random.default_rng([self.seed, _STREAM_PATCH, int(epoch), i])
        k = i // self.samples_per_volume
        image, lab, centres = self._images[k], self._labels[k], self._centres[k]
        classes = sorted(centres)
        cls = classes[int(rng.integers(0, len(classes)))]
        flat = centres[cls][int(rng.integers(0, centres[cls].size))]
        centre = np.unravel_index(flat, image.shape[1:])
        start = [int(min(max(c - r // 2, 0), n - r)) for c, r, n in zip(centre, self.roi, image.shape[1:])]
        sl = tuple(slice(s, s + r) for s, r in zip(start, self.roi))
        return image[(slice(None), *sl)], (lab[sl] if lab is not None else None)


# ---------------------------------------------------------------------------------------------
# distributed helpers
@dataclass(frozen=True)
class _Dist:
    rank: int
    world_size: int
    device: torch.device
    owns_group: bool

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _setup_dist(device_name: str) -> _Dist:
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = device_name == "cuda" or (device_name == "auto" and torch.cuda.is_available())
    if device_name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device is 'cuda' but no CUDA GPU is visible; use -p device=cpu or device=auto")
    if world <= 1:
        return _Dist(0, 1, torch.device("cuda" if use_cuda else "cpu"), False)
    owns = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        owns = True
    rank = dist.get_rank()
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    return _Dist(rank, dist.get_world_size(), device, owns)


def _barrier(d: _Dist) -> None:
    if d.world_size > 1:
        import torch.distributed as dist

        dist.barrier()


def _all_mean(values: dict[str, float], d: _Dist) -> dict[str, float]:
    if d.world_size <= 1:
        return values
    import torch.distributed as dist

    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=d.device)
    dist.all_reduce(t)
    return {k: float(v) / d.world_size for k, v in zip(keys, t.tolist())}


def _seed_from(*parts: int) -> int:
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
        return self.out_dir / FINAL

    @property
    def best_path(self) -> Path:
        """``model_best.pt``."""
        return self.out_dir / BEST


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
    task_config: Any,
    augment_samples: bool,
    card: dict[str, Any],
    resume: bool = False,
    stop_after: int | None = None,
    progress: bool = True,
    transfer: pd.DataFrame | None = None,
) -> TrainResult:
    """Train ``model`` on ``sampler``'s patches; the shared loop of every task.

    Parameters
    ----------
    out_dir : str or Path
        Task folder; created.
    config : Config
        Resolved configuration (``seed``, ``device``, ``augment`` and the task section).
    task : {"skeleton", "ssl", "lesion"}
        Name written to logs, checkpoints and the model card.
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
        Apply SPEC §4 augmentation (supervised tasks).
    card : dict
        Facts for ``MODEL_CARD.md`` (see :func:`_write_model_card`).
    resume : bool
        Continue from ``checkpoint_last.pt`` (or a finished ``model_final.pt``) if present.
    stop_after : int, optional
        Return after this many completed epochs (time-boxed sessions; resume later).
    progress : bool
        Show a tqdm bar (rank 0).
    transfer : DataFrame, optional
        Transfer report to carry in the result.

    Returns
    -------
    TrainResult
    """
    out_dir = Path(out_dir)
    tc = task_config
    if tc.epochs < 1 or tc.batch_size < 1 or tc.val_every < 1 or tc.warmup_epochs < 0:
        raise ConfigError(f"{task}: epochs, batch_size and val_every must be >= 1 and warmup_epochs >= 0, got "
                          f"{tc.epochs}, {tc.batch_size}, {tc.val_every}, {tc.warmup_epochs}")
    d = _setup_dist(config.device)
    try:
        with torch.random.fork_rng(devices=[d.device] if d.device.type == "cuda" else []):
            return _fit(out_dir, config, d, task=task, model=model, groups=groups, sampler=sampler, step=step,
                        validate=validate, tc=tc, augment_samples=augment_samples, card=card, resume=resume,
                        stop_after=stop_after, progress=progress, transfer=transfer)
    finally:
        if d.owns_group:
            import torch.distributed as dist

            dist.destroy_process_group()


def _fit(out_dir: Path, config: Config, d: _Dist, *, task: str, model: nn.Module, groups: list[dict[str, Any]],
         sampler: Any, step: StepFn, validate: ValFn | None, tc: Any, augment_samples: bool, card: dict[str, Any],
         resume: bool, stop_after: int | None, progress: bool, transfer: pd.DataFrame | None) -> TrainResult:
    from tqdm.auto import tqdm

    model.to(d.device)
    optimizer = torch.optim.Adam(groups, lr=groups[0]["lr"], weight_decay=tc.weight_decay)
    for g in optimizer.param_groups:
        g.setdefault("initial_lr", g["lr"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda e: lr_factor(e, warmup_epochs=tc.warmup_epochs, epochs=tc.epochs))
    use_amp = bool(tc.amp) and d.device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.float16)) if use_amp else None
    names = [g.get("name", f"group{i}") for i, g in enumerate(optimizer.param_groups)]

    start, best, rows = 0, float("nan"), []
    if resume:
        ckpt_path = next((p for p in (out_dir / LAST, out_dir / FINAL) if p.is_file()), None)
        if ckpt_path is not None:
            ck = load_checkpoint(ckpt_path, map_location=d.device)
            if ck.get("extra", {}).get("task") != task:
                raise CheckpointError(f"{ckpt_path} is a {ck.get('extra', {}).get('task')!r} checkpoint, not {task!r}; "
                                      "use another run folder or drop --resume")
            unwrap(model).load_state_dict(ck["state_dict"])
            optimizer.load_state_dict(ck["optimizer"])
            scheduler.load_state_dict(ck["scheduler"])
            if ck.get("scaler"):
                scaler.load_state_dict(ck["scaler"])
            start = int(ck["epoch"])
            best = float(ck["extra"].get("best_score", float("nan")))
            if (out_dir / "log.csv").is_file():
                old = pd.read_csv(out_dir / "log.csv")
                rows = old[old["epoch"] <= start].to_dict("records")
    net: nn.Module = model
    if d.world_size > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[d.device.index] if d.device.type == "cuda" else None)

    def log_row(epoch: int, losses: dict[str, float], lrs: list[float], val: dict[str, float], seconds: float) -> None:
        row: dict[str, Any] = {"epoch": epoch, **losses}
        row.update({f"lr_{n}": lr for n, lr in zip(names, lrs)})
        row.update({f"val_{k}": v for k, v in val.items()})
        row["seconds"] = seconds
        rows.append(row)
        if d.is_main:
            atomic_write_text(out_dir / "log.csv", pd.DataFrame(rows).to_csv(index=False))

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
        _barrier(d)
    end = tc.epochs if stop_after is None else min(tc.epochs, int(stop_after))
    bar = tqdm(range(start, end), desc=task, unit="epoch", disable=not (progress and d.is_main),
               initial=start, total=tc.epochs)
    for epoch in bar:
        t0 = time.perf_counter()
        torch.manual_seed(_seed_from(config.seed, _STREAM_DROPOUT, epoch, d.rank))
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
                images.append(torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)))
                if label is not None:
                    labels.append(torch.from_numpy(np.ascontiguousarray(label).astype(np.int64)))
            x = torch.stack(images).to(d.device)
            y = torch.stack(labels)[:, None].to(d.device) if labels else None
            gen = torch.Generator().manual_seed(_seed_from(config.seed, _STREAM_SSL, epoch, d.rank, b))
            optimizer.zero_grad(set_to_none=True)
            losses = step(net, x, y, gen, autocast)
            scaler.scale(losses["loss"]).backward()
            scaler.step(optimizer)
            scaler.update()
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            n_batches += 1
        epoch_losses = _all_mean({k: v / max(n_batches, 1) for k, v in sums.items()}, d)
        lrs = [g["lr"] for g in optimizer.param_groups]
        scheduler.step()
        done = epoch + 1
        val: dict[str, float] = {}
        if validate is not None and (done % tc.val_every == 0 or done == tc.epochs):
            if d.is_main:
                val = validate(unwrap(model), d.device)
                if math.isnan(best) or val["score"] > best:
                    best = val["score"]
                    save_checkpoint(out_dir / BEST, **state(done))
            _barrier(d)
        log_row(done, epoch_losses, lrs, val, time.perf_counter() - t0)
        if d.is_main:
            save_checkpoint(out_dir / LAST, **state(done))
            bar.set_postfix(loss=f"{epoch_losses.get('loss', float('nan')):.4f}")
        _barrier(d)
    bar.close()
    done = max(start, end)
    finished = done >= tc.epochs
    if finished and d.is_main:
        save_checkpoint(out_dir / FINAL, **state(tc.epochs))
        (out_dir / LAST).unlink(missing_ok=True)
        _write_model_card(out_dir, task=task, config=config, log=pd.DataFrame(rows), card=card, best=best)
    _barrier(d)
    return TrainResult(out_dir=out_dir, log=pd.DataFrame(rows), epochs_done=done, finished=finished,
                       best_score=best, transfer=transfer)


def _write_model_card(out_dir: Path, *, task: str, config: Config, log: pd.DataFrame, card: dict[str, Any],
                      best: float) -> Path:
    val_cols = [c for c in log.columns if c.startswith("val_")]
    last_val = log.dropna(subset=val_cols, how="all").tail(1) if val_cols else log.iloc[0:0]
    metrics = "\n".join(f"| {c[4:]} | {last_val[c].iloc[0]:.4f} |" for c in val_cols if len(last_val)) or "| (none) | |"
    labels = "\n".join(f"- {k}: {v}" for k, v in card.get("label_map", {}).items())
    text = f"""# Model card — sapkit {task} model

**Task.** {card.get('summary', task)}

**Architecture.** {config.model.backbone} ({'feature size ' + str(config.model.feature_size) if config.model.backbone == 'swinunetr' else 'channels ' + str(list(config.model.channels))}), profile `{config.profile}`, seed {config.seed}.

**Inputs.** {config.model.in_channels} channels in this order: 0 = T1-weighted, 1 = DWI b = 1000 s/mm² (resampled onto the T1 grid). Each channel clipped to its {config.preprocess.clip_percentiles[0]:g}–{config.preprocess.clip_percentiles[1]:g} percentile over the whole volume and rescaled to [0, 1] — the same at inference (`sapkit.preprocess.scale_intensity`). Patch {list(card.get('roi', []))} voxels.

**Outputs / label map.**
{labels or '- (self-supervised: no segmentation classes)'}

**Training data.** {card.get('data', 'see config.yaml')}

**Training.** {card.get('training', '')} Epochs {config_to_dict(config)[task]['epochs']}; files: `model_final.pt` (last epoch), `model_best.pt` (best validation score {best:.4f}), `log.csv`.

**Validation metrics (last validation).**

| metric | value |
|---|---|
{metrics}

**Intended use.** {card.get('intended_use', 'Research on transfer learning for bone-metastasis segmentation in whole-body MRI; not a medical device.')}

**Limits.** {card.get('limits', 'Trained on few scans; not validated for clinical use, other scanners, protocols or populations.')}
"""
    return atomic_write_text(out_dir / "MODEL_CARD.md", text)


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
    from sapkit.data import load_cases
    from sapkit.manifest import load_manifest
    from sapkit.runs import data_dir
    from sapkit.splits import load_splits

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
    if train_cases is None:
        train_cases, val_cases, desc = _healthy_cases(run_dir, config, data, need_skeleton=True)
    else:
        desc = f"{len(train_cases)} training and {len(val_cases or [])} validation scans given directly"
    model = build_model(config.model, sc.num_classes, seed=config.seed)
    _check_roi(sc.roi, model, "skeleton")
    d_rank, d_world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
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
    :func:`sapkit.transfer.transfer_weights` with ``init="ssl"`` strips ``backbone.`` and copies
    the SSL-trained modules only.
    """
    from sapkit.ssl import build_ssl_model, ssl_losses

    run_dir = Path(run_dir)
    sc = config.ssl
    if train_cases is None:
        train_cases, val_cases, desc = _healthy_cases(run_dir, config, data, need_skeleton=False)
    else:
        desc = f"{len(train_cases)} training and {len(val_cases or [])} validation scans given directly"
    model = build_ssl_model(config, seed=config.seed)
    _check_roi(sc.roi, model.backbone, "ssl")
    d_rank, d_world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
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
            gen = torch.Generator().manual_seed(_seed_from(config.seed, _STREAM_VAL))
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
        Lesion patch sampler (e.g. :func:`sapkit.sampling.build_sampler`), already built for
        this process's rank.
    pretrained : str or Path, optional
        Another checkpoint (any layout of :func:`sapkit.checkpoints.import_weights`).

    Returns
    -------
    TrainResult
        With ``transfer`` set for ``sap``/``ssl``.
    """
    from sapkit.transfer import INITS

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
        src = Path(pretrained) if pretrained else task_dir(run_dir, "skeleton" if init == "sap" else "ssl") / FINAL
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
