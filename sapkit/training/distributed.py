"""Process placement for training: one process, or one DDP rank launched by ``torchrun``.

``torchrun`` sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; :func:`setup_distributed` reads
them (the launcher's contract, not sapkit configuration), joins the process group (gloo on CPU,
nccl on CUDA) unless one exists, and says which device this rank uses. Rank 0 is the one that
writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from sapkit.errors import ConfigError

__all__ = ["DistContext", "setup_distributed", "barrier", "all_mean"]


@dataclass(frozen=True)
class DistContext:
    """Where this process trains.

    Attributes
    ----------
    rank, world_size : int
        DDP rank and number of ranks (0 and 1 without ``torchrun``).
    device : torch.device
        ``cpu`` or ``cuda:<LOCAL_RANK>``.
    owns_group : bool
        Whether :func:`setup_distributed` created the process group (and the caller must destroy it).
    """

    rank: int
    world_size: int
    device: torch.device
    owns_group: bool

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files."""
        return self.rank == 0


def setup_distributed(device_name: str) -> DistContext:
    """Join the ``torchrun`` process group (if ``WORLD_SIZE`` > 1) and pick this rank's device.

    Parameters
    ----------
    device_name : {"auto", "cpu", "cuda"}
        ``config.device``; ``auto`` uses CUDA when a GPU is visible.

    Returns
    -------
    DistContext

    Raises
    ------
    ConfigError
        ``cuda`` requested but no GPU is visible.
    """
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = device_name == "cuda" or (device_name == "auto" and torch.cuda.is_available())
    if device_name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device is 'cuda' but no CUDA GPU is visible; use -p device=cpu or device=auto")
    if world <= 1:
        return DistContext(0, 1, torch.device("cuda" if use_cuda else "cpu"), False)
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
    return DistContext(rank, dist.get_world_size(), device, owns)


def barrier(d: DistContext) -> None:
    """Wait for every rank (no-op in a single process)."""
    if d.world_size > 1:
        import torch.distributed as dist

        dist.barrier()


def all_mean(values: dict[str, float], d: DistContext) -> dict[str, float]:
    """Mean of each value over the ranks (every rank must pass the same keys); unchanged in one process."""
    if d.world_size <= 1:
        return values
    import torch.distributed as dist

    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=d.device)
    dist.all_reduce(t)
    return {k: float(v) / d.world_size for k, v in zip(keys, t.tolist())}
