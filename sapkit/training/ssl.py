"""Self-supervised pretraining after Tang et al. (CVPR 2022) on any sapkit backbone.

Three pretext tasks share the backbone's bottleneck feature (:func:`sapkit.networks.factory.encoder_features`):

- **rotation** — each view is turned by k·90°, k ∈ {0, 1, 2, 3}, in the X–Y plane; a linear head on
  the globally pooled feature predicts k (cross-entropy);
- **contrastive** — two independently rotated and corrupted views of the same patch are projected
  (``projection_dim``, 512 in the paper) and pulled together against the other patches of the batch
  (NT-Xent, ``temperature`` 0.5 by default);
- **reconstruction** — a small transposed-convolution decoder restores the clean rotated patch from
  the corrupted one (L1 inpainting loss). Corruption = block-wise random voxel drop (a random
  fraction up to ``drop_ratio`` = 30 % of the voxels replaced by uniform noise, in cubes of
  ``drop_block`` voxels) followed by local patch swaps (``swap_ratio`` of the volume exchanged in
  pairs of cubes).

Total loss = ``w_rot``·rotation + ``w_con``·contrastive + ``w_rec``·reconstruction. Every random
choice comes from a passed ``torch.Generator`` (no global RNG). For SwinUNETR only ``swinViT``
receives gradients from these losses (the bottleneck is its deepest stage); for the CNNs the
encoder stages do — exactly what :func:`sapkit.networks.transfer.transfer_weights` with ``init="ssl"`` copies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sapkit.config import Config, SSLConfig
from sapkit.errors import CheckpointError, ConfigError
from sapkit.io.checkpoints import load_checkpoint
from sapkit.networks.factory import bottleneck_channels, build_model, downsample_factor, encoder_features

__all__ = [
    "SSLModel",
    "SSLLosses",
    "build_ssl_model",
    "load_ssl_model",
    "rotate_views",
    "drop_voxels",
    "swap_patches",
    "corrupt",
    "nt_xent",
    "ssl_losses",
]


class SSLModel(nn.Module):
    """A segmentation backbone plus the three SSL heads.

    Attributes
    ----------
    backbone : nn.Module
        Network from :func:`sapkit.networks.factory.build_model`; its state_dict is saved under ``backbone.``.
    rotation_head : nn.Linear
        Pooled feature → 4 rotation logits.
    contrastive_head : nn.Linear
        Pooled feature → ``projection_dim`` embedding.
    reconstruction_head : nn.Sequential
        Bottleneck → image ``(B, in_channels, *roi)``.
    """

    def __init__(self, backbone: nn.Module, *, in_channels: int, projection_dim: int) -> None:
        super().__init__()
        self.backbone = backbone
        c = bottleneck_channels(backbone)
        n_up = int(round(math.log2(downsample_factor(backbone))))
        self.rotation_head = nn.Linear(c, 4)
        self.contrastive_head = nn.Linear(c, projection_dim)
        layers: list[nn.Module] = []
        ch = c
        for _ in range(n_up):
            nxt = max(ch // 2, 8)
            layers += [nn.ConvTranspose3d(ch, nxt, kernel_size=2, stride=2), nn.InstanceNorm3d(nxt, affine=True),
                       nn.LeakyReLU(0.01)]
            ch = nxt
        layers.append(nn.Conv3d(ch, in_channels, kernel_size=1))
        self.reconstruction_head = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Rotation logits ``(B, 4)``, projection ``(B, P)``, reconstruction ``(B, C, *roi)``."""
        feat = encoder_features(self.backbone, x)
        pooled = feat.mean(dim=(2, 3, 4))
        return self.rotation_head(pooled), self.contrastive_head(pooled), self.reconstruction_head(feat)


def build_ssl_model(config: Config, *, seed: int | None = None) -> SSLModel:
    """SSL model for ``config.model`` (backbone head sized 2, unused) and ``config.ssl``."""
    backbone = build_model(config.model, 2, seed=seed)
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed + 1)
        return SSLModel(backbone, in_channels=config.model.in_channels, projection_dim=config.ssl.projection_dim)


def load_ssl_model(checkpoint: str | Path, config: Config) -> SSLModel:
    """The SSL model (backbone and heads) of a checkpoint of :func:`sapkit.training.ssl_task.train_ssl`, in eval mode.

    Loaded safely (``weights_only=True``) on the CPU into :func:`build_ssl_model` of ``config``.

    Raises
    ------
    CheckpointError
        Missing or unsafe file, or weights that do not fit ``config.model``/``config.ssl`` (another run's checkpoint).
    """
    payload = load_checkpoint(checkpoint)
    state = payload.get("state_dict") if isinstance(payload, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {checkpoint} holds no state_dict; pass ssl/model_final.pt of a run")
    model = build_ssl_model(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(f"checkpoint {checkpoint} does not fit the SSL model of this configuration ({first}); "
                              "load it with the profile and overrides it was trained with") from None
    return model.eval()


def rotate_views(x: torch.Tensor, *, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate each sample of ``x (B, C, X, Y, Z)`` by k·90° in the X–Y plane.

    Returns
    -------
    rotated : (B, C, X, Y, Z) tensor
    k : (B,) int64 tensor in {0, 1, 2, 3}
    """
    if x.shape[2] != x.shape[3]:
        raise ConfigError(f"rotation needs equal X and Y patch sizes, got {tuple(x.shape[2:])}")
    k = torch.randint(0, 4, (x.shape[0],), generator=generator)
    out = torch.stack([torch.rot90(x[i], int(k[i]), dims=(1, 2)) for i in range(x.shape[0])])
    return out, k.to(x.device)


def _rand_block(shape: tuple[int, ...], block: int, generator: torch.Generator) -> tuple[slice, slice, slice]:
    sl = []
    for n in shape:
        b = min(block, n)
        start = int(torch.randint(0, n - b + 1, (1,), generator=generator))
        sl.append(slice(start, start + b))
    return tuple(sl)  # type: ignore[return-value]


def drop_voxels(x: torch.Tensor, *, drop_ratio: float, block: int, generator: torch.Generator) -> torch.Tensor:
    """Replace random cubes of ``block`` voxels by U(0, 1) noise until a random fraction
    r ~ U(0, ``drop_ratio``] of each sample's voxels is dropped (r ≤ 30 % in the paper).

    Returns a new tensor; ``x`` is unchanged.
    """
    if not 0.0 <= drop_ratio <= 1.0 or block < 1:
        raise ConfigError(f"drop_ratio must be in [0, 1] and drop_block >= 1, got {drop_ratio}, {block}")
    out = x.clone()
    spatial = tuple(x.shape[2:])
    n_vox = math.prod(spatial)
    for i in range(x.shape[0]):
        target = float(torch.rand((), generator=generator)) * drop_ratio * n_vox
        mask = torch.zeros(spatial, dtype=torch.bool)
        dropped, tries = 0, 0
        while dropped < target and tries < 100_000:
            sl = _rand_block(spatial, block, generator)
            if dropped + math.prod(s.stop - s.start for s in sl) > drop_ratio * n_vox:
                break  # never exceed drop_ratio
            mask[sl] = True
            dropped = int(mask.sum())
            tries += 1
        if dropped:
            noise = torch.rand((x.shape[1], dropped), generator=generator).to(x.device, x.dtype)
            out[i][:, mask.to(x.device)] = noise
    return out


def swap_patches(x: torch.Tensor, *, swap_ratio: float, block: int, generator: torch.Generator) -> torch.Tensor:
    """Exchange pairs of random cubes (``block`` voxels) inside each sample; about ``swap_ratio``
    of the voxels take part. Returns a new tensor."""
    if not 0.0 <= swap_ratio <= 1.0:
        raise ConfigError(f"swap_ratio must be in [0, 1], got {swap_ratio}")
    out = x.clone()
    spatial = tuple(x.shape[2:])
    b3 = math.prod(min(block, n) for n in spatial)
    n_pairs = int(round(swap_ratio * math.prod(spatial) / (2 * b3)))
    for i in range(x.shape[0]):
        for _ in range(n_pairs):
            a = _rand_block(spatial, block, generator)
            b = _rand_block(spatial, block, generator)
            pa, pb = out[i][(slice(None), *a)].clone(), out[i][(slice(None), *b)].clone()
            out[i][(slice(None), *a)] = pb
            out[i][(slice(None), *b)] = pa
    return out


def corrupt(x: torch.Tensor, ssl_config: SSLConfig, *, generator: torch.Generator) -> torch.Tensor:
    """Voxel drop then patch swap with the sizes of ``config.ssl``."""
    y = drop_voxels(x, drop_ratio=ssl_config.drop_ratio, block=ssl_config.drop_block, generator=generator)
    return swap_patches(y, swap_ratio=ssl_config.swap_ratio, block=ssl_config.drop_block, generator=generator)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, *, temperature: float) -> torch.Tensor:
    """Normalised-temperature cross-entropy between two views ``(B, P)``; positives are pairs (i, i)."""
    if temperature <= 0:
        raise ConfigError(f"ssl.temperature must be > 0, got {temperature}")
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    sim = z @ z.t() / temperature
    n = z1.shape[0]
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


@dataclass(frozen=True)
class SSLLosses:
    """Loss terms of one SSL step (tensors with grad for ``total``)."""

    total: torch.Tensor
    rotation: torch.Tensor
    contrastive: torch.Tensor
    reconstruction: torch.Tensor


def ssl_losses(model: nn.Module, x: torch.Tensor, ssl_config: SSLConfig, *, generator: torch.Generator,
               autocast: Any = None) -> SSLLosses:
    """Build two views of ``x (B, C, *roi)``, run the model and return the weighted losses.

    ``autocast`` is an optional context-manager factory (AMP on CUDA); losses are float32.
    """
    x1, k1 = rotate_views(x, generator=generator)
    x2, k2 = rotate_views(x, generator=generator)
    in1, in2 = corrupt(x1, ssl_config, generator=generator), corrupt(x2, ssl_config, generator=generator)
    import contextlib

    with (autocast() if autocast is not None else contextlib.nullcontext()):
        rot, proj, rec = model(torch.cat([in1, in2]))
    rot, proj, rec = rot.float(), proj.float(), rec.float()
    n = x.shape[0]
    loss_rot = F.cross_entropy(rot, torch.cat([k1, k2]))
    loss_con = nt_xent(proj[:n], proj[n:], temperature=ssl_config.temperature)
    loss_rec = F.l1_loss(rec, torch.cat([x1, x2]))
    total = (ssl_config.loss_weight_rotation * loss_rot + ssl_config.loss_weight_contrastive * loss_con
             + ssl_config.loss_weight_reconstruction * loss_rec)
    return SSLLosses(total=total, rotation=loss_rot, contrastive=loss_con, reconstruction=loss_rec)
