"""Which GPUs each element of a local job array sees (``--executor local``; SLURM assigns its own).

A local element is a process on this machine; it sees the GPUs named in its
``CUDA_VISIBLE_DEVICES``. :func:`machine_gpus` lists this machine's GPUs (the ones this process
may use); :class:`GpuPool` deals them to the elements as they start:

- ``gpus=None`` (``--gpus`` not given): every element sees every GPU of the machine;
- ``gpus=0``: none (the element runs on the CPU);
- ``gpus=k``: ``k`` GPUs per element, the ones fewest running elements use, round robin on
  ties — with ``--gpus 1`` and 4 GPUs, four elements at a time each get their own.

Asking for more GPUs per element than the machine has is refused before anything starts.
"""

from __future__ import annotations

import os
from collections import Counter

from sapkit.errors import ConfigError

__all__ = ["machine_gpus", "GpuPool"]


def machine_gpus() -> list[str]:
    """This machine's GPUs that this process may use: ``CUDA_VISIBLE_DEVICES``' entries when it is set, else
    ``0 … torch.cuda.device_count() - 1`` (ids as CUDA_VISIBLE_DEVICES takes them)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = []
        for item in (v.strip() for v in visible.split(",")):
            if not item or item.startswith("-"):  # CUDA ignores everything from an invalid entry on
                break
            ids.append(item)
        return ids
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001 — no torch or no driver: no GPU
        return []


class GpuPool:
    """Deals the machine's GPUs to elements as they start (see the module docstring).

    Parameters
    ----------
    available : list of str
        GPU ids (:func:`machine_gpus`).
    per_element : int or None
        GPUs per element; None = all of them.

    Examples
    --------
    >>> pool = GpuPool(["0", "1", "2"], 1)
    >>> [pool.take(n) for n in "abc"], pool.take("d")
    (['0', '1', '2'], '0')
    >>> pool.release("b"); pool.take("e")
    '1'
    """

    def __init__(self, available: list[str], per_element: int | None) -> None:
        if per_element is not None and per_element > len(available):
            have = f"{len(available)} ({', '.join(available)})" if available else "no CUDA GPU"
            raise ConfigError(f"--gpus {per_element} asks for {per_element} GPU(s) per element, but this machine has "
                              f"{have} (CUDA_VISIBLE_DEVICES / torch.cuda.device_count()); use --gpus "
                              f"{len(available)} or fewer, drop --gpus, or run with --executor slurm")
        self.available, self.per_element = list(available), per_element
        self._users: Counter[str] = Counter()
        self._held: dict[str, list[str]] = {}
        self._next = 0

    def take(self, name: str) -> str:
        """The ``CUDA_VISIBLE_DEVICES`` value of element ``name`` (held until :meth:`release`)."""
        if self.per_element is None:
            chosen = list(self.available)
        else:
            n = len(self.available)
            order = [self.available[(self._next + i) % n] for i in range(n)]
            chosen = sorted(order, key=lambda g: self._users[g])[:self.per_element]  # stable: round robin on ties
            if chosen:
                self._next = (self.available.index(chosen[-1]) + 1) % n
        self._users.update(chosen)
        self._held[name] = chosen
        return ",".join(chosen)

    def release(self, name: str) -> None:
        """Element ``name`` ended: its GPUs are free again."""
        self._users.subtract(self._held.pop(name, []))

    def describe(self, visible: str) -> str:
        """``GPU 1``, ``GPUs 0,1`` or ``no GPU (CPU)`` for a ``CUDA_VISIBLE_DEVICES`` value."""
        if not visible:
            return "no GPU (CPU)"
        return f"GPU{'s' if ',' in visible else ''} {visible}"
