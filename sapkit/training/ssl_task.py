"""The SSL baseline's pretraining: Tang et al. self-supervised tasks on random body patches.

:func:`train_ssl` trains the segmentation network's encoder with the rotation, contrastive and
masked-inpainting losses of :mod:`sapkit.training.ssl` on random body patches of the healthy cohort
(:class:`~sapkit.training.skeleton_sampler.PatchSampler` without labels, no augmentation), through
the shared loop :func:`sapkit.training.engine.fit`. Validation is the same loss on fixed validation
patches (drawn once from the stream ``seed + 204``), so its score is ``−loss``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from sapkit.config import Config
from sapkit.io.run_paths import RunDir
from sapkit.networks.factory import check_roi_fits
from sapkit.training._task_inputs import STREAM_VAL, rank_and_world, resolve_cases
from sapkit.training.engine import TrainResult, fit, seed_from
from sapkit.training.skeleton_sampler import PatchSampler
from sapkit.training.ssl import build_ssl_model, ssl_losses

__all__ = ["train_ssl"]


def train_ssl(
    run_dir: str | Path, config: Config, *, data: str | Path | None = None, resume: bool = False,
    train_cases: Sequence[Any] | None = None, val_cases: Sequence[Any] | None = None,
    stop_after: int | None = None, progress: bool = True,
) -> TrainResult:
    """Self-supervised pretraining (Tang et al.) on the healthy scans into ``run_dir/ssl``.

    Same parameters as :func:`sapkit.training.skeleton_task.train_skeleton`; uses ``config.ssl``. The checkpoint's
    ``state_dict`` holds ``backbone.*`` (the segmentation network) and the SSL heads;
    :func:`sapkit.networks.transfer.transfer_weights` with ``init="ssl"`` strips ``backbone.`` and copies
    the SSL-trained modules only.
    """
    run_dir = Path(run_dir)
    sc = config.ssl
    train_cases, val_cases, desc = resolve_cases(run_dir, config, data, train_cases, val_cases, need_skeleton=False)
    model = build_ssl_model(config, seed=config.seed)
    check_roi_fits(sc.roi, model.backbone, what="ssl.roi")
    d_rank, d_world = rank_and_world()
    sampler = PatchSampler(train_cases, roi=sc.roi, samples_per_volume=sc.samples_per_volume, label=None,
                           seed=config.seed, rank=d_rank, world_size=d_world)

    def step(net: nn.Module, x: torch.Tensor, y: Any, gen: torch.Generator, autocast: Any) -> dict[str, torch.Tensor]:
        ls = ssl_losses(net, x, sc, generator=gen, autocast=autocast)
        return {"loss": ls.total, "loss_rotation": ls.rotation, "loss_contrastive": ls.contrastive,
                "loss_reconstruction": ls.reconstruction}

    validate = None
    if val_cases:
        val_sampler = PatchSampler(val_cases, roi=sc.roi, samples_per_volume=sc.samples_per_volume, label=None,
                                   seed=config.seed + STREAM_VAL)
        val_patches = val_sampler.epoch_samples(0)

        @torch.no_grad()
        def validate(m: nn.Module, device: torch.device) -> dict[str, float]:
            was = m.training
            m.eval()
            gen = torch.Generator().manual_seed(seed_from(config.seed, STREAM_VAL))
            out: dict[str, float] = {}
            for b in range(0, len(val_patches), max(sc.batch_size, 2)):
                x = torch.stack([torch.from_numpy(np.require(p[0], np.float32, ["C_CONTIGUOUS", "WRITEABLE"])) for p in val_patches[b:b + max(sc.batch_size, 2)]]).to(device)
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
    return fit(RunDir(run_dir).ssl.path, config, task="ssl", model=model,
               groups=[{"name": "all", "params": list(model.parameters()), "lr": sc.lr}], sampler=sampler,
               step=step, validate=validate, task_config=sc, augment_samples=False, card=card, resume=resume,
               stop_after=stop_after, progress=progress,
               # The SSL losses read only the backbone's encoder (encoder_features): its decoder and
               # segmentation head get no gradient, which DDP refuses at the second step unless told.
               # They stay at their seeded initialisation and are saved so the checkpoint is a whole backbone.
               unused_parameters=True)
