"""The non-finite check on named tensors: the first weight, gradient or loss holding NaN or ±inf.

One check, two users: the training loop's divergence guard (:mod:`sapkit.training.divergence`,
after every backward pass and optimiser step) and checkpoint loading for inference
(:func:`sapkit.inference.predict.load_model` refuses the weights of a diverged run).
"""

from __future__ import annotations

from typing import Iterable

import torch

__all__ = ["first_nonfinite"]


def first_nonfinite(named: Iterable[tuple[str, torch.Tensor | None]]) -> str | None:
    """Name of the first tensor holding a NaN or ±inf; None if all are finite.

    ``None`` entries, empty and non-floating-point tensors (never non-finite) are skipped.

    Examples
    --------
    >>> first_nonfinite([("a", torch.ones(2)), ("b", torch.tensor([1.0, float("nan")]))])
    'b'
    >>> first_nonfinite([("a", torch.ones(2)), ("g", None)]) is None
    True
    """
    items = [(n, t.detach()) for n, t in named if t is not None and t.is_floating_point() and t.numel()]
    if not items:
        return None
    # max and min propagate NaN and show ±inf: two reductions per tensor, one host sync for all
    device = items[0][1].device
    extremes = torch.stack([torch.stack([t.amax(), t.amin()]).float().to(device) for _, t in items])
    ok = torch.isfinite(extremes).all(dim=1)
    if bool(ok.all()):
        return None
    return items[int((~ok).nonzero()[0])][0]
