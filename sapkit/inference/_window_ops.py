"""Mechanics of :mod:`sapkit.inference.sliding_window` (private): body-mask morphology and the window loops.

Morphology: per-plane hole filling and 6-neighbourhood dilation, equal to
``scipy.ndimage.binary_fill_holes`` / ``binary_dilation`` but several times faster on
whole-body volumes. Window loops: MONAI's grid, the full-volume pass (MONAI itself) and the
body-skipping pass. Validation happens in :mod:`sapkit.inference.sliding_window`; these helpers take checked
arguments. Volumes are (C, X, Y, Z) CPU tensors, logits (K, X, Y, Z) float32 on the CPU.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from sapkit.imaging.components import label_components
from sapkit.jobs.progress import progress_bar
from sapkit.networks.factory import memory_format_for

__all__: list[str] = []


def fill_holes_axial(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """``scipy.ndimage.binary_fill_holes`` of every axial (X, Y) plane, in one labelling call.

    The planes holding the mask are stacked into one tall 2D image, separated by a row that is
    not background, and its background is labelled 4-connected; a background piece touching its
    plane's edge is outside, every other piece is a hole. ``mask`` is filled in place.
    """
    zs = np.flatnonzero(mask.any(axis=(0, 1)))
    if zs.size == 0:
        return mask
    planes = np.moveaxis(mask[:, :, zs[0]:zs[-1] + 1], 2, 0)  # (nz, X, Y) view into mask
    nz, nx, ny = planes.shape
    tall = np.zeros((nz, nx + 1, ny), bool)
    tall[:, :nx] = ~planes
    labels = label_components(tall.reshape(-1, ny), connectivity=4)[0].reshape(tall.shape)[:, :nx]
    outside = np.zeros(int(labels.max()) + 1, bool)
    for edge in (labels[:, 0], labels[:, -1], labels[:, :, 0], labels[:, :, -1]):
        outside[edge.ravel()] = True
    outside[0] = False  # label 0 = the mask itself
    planes[...] = ~outside[labels]
    return mask


def dilate_6(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """One binary dilation by the 6-neighbourhood cross (``scipy.ndimage.binary_dilation``'s default)."""
    out = mask.copy()
    for ax in range(3):
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[ax], hi[ax] = slice(None, -1), slice(1, None)
        out[tuple(hi)] |= mask[tuple(lo)]
        out[tuple(lo)] |= mask[tuple(hi)]
    return out


def pad_sizes(shape: Sequence[int], roi: Sequence[int]) -> list[tuple[int, int]]:
    """MONAI's padding of a volume smaller than the ROI: (diff // 2, diff - diff // 2) per axis."""
    out = []
    for n, r in zip(shape, roi):
        diff = max(r - n, 0)
        out.append((diff // 2, diff - diff // 2))
    return out


def grid(shape: Sequence[int], roi: Sequence[int], overlap: float) -> list[tuple[slice, slice, slice]]:
    """MONAI's window positions (in the padded volume, MONAI's order) for an unpadded ``shape``."""
    from monai.data.utils import dense_patch_slices

    padded = [n + a + b for n, (a, b) in zip(shape, pad_sizes(shape, roi))]
    interval = [r if r == n else max(int(r * (1 - overlap)), 1) for n, r in zip(padded, roi)]
    return [tuple(slice(int(a.start), int(a.stop)) for a in s)  # type: ignore[misc]
            for s in dense_patch_slices(padded, roi, interval)]


def intersecting(body: npt.NDArray[np.bool_], slices: Sequence[tuple[slice, slice, slice]],
                 roi: Sequence[int]) -> list[tuple[slice, slice, slice]]:
    """The windows of ``slices`` (padded coordinates) holding at least one voxel of ``body``."""
    pads = pad_sizes(body.shape, roi)
    padded = np.pad(body, pads) if any(a or b for a, b in pads) else body
    return [s for s in slices if padded[s].any()]


def n_classes(model: nn.Module, x: torch.Tensor, roi: Sequence[int], device: torch.device) -> int:
    pads = pad_sizes(x.shape[1:], roi)
    probe = torch.nn.functional.pad(x, [v for a, b in reversed(pads) for v in (a, b)])
    with torch.no_grad():
        return int(model(probe[None, :, :roi[0], :roi[1], :roi[2]].to(device)).shape[1])



class _Predictor:
    """Runs the network on a batch of windows (autocast on CUDA), returns float32 logits."""

    def __init__(self, model: nn.Module, device: torch.device, amp: torch.dtype | None) -> None:
        self.layout = memory_format_for(device)
        self.model, self.device, self.amp = model.to(memory_format=self.layout), device, amp

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(self.device, memory_format=self.layout)
        if self.amp is None:
            return self.model(batch).float().contiguous()
        with torch.autocast(device_type="cuda", dtype=self.amp):
            return self.model(batch).float().contiguous()


def run_full(model: nn.Module, x: torch.Tensor, *, roi: tuple[int, int, int], overlap: float,
                         blend: str, sw_batch_size: int, device: torch.device, amp: torch.dtype | None,
                         progress: bool) -> torch.Tensor:
    """Plain MONAI sliding-window inference over the whole volume → logits (K, X, Y, Z) on CPU."""
    from monai.inferers import sliding_window_inference

    with torch.no_grad():
        out = sliding_window_inference(
            x[None], roi, sw_batch_size, _Predictor(model, device, amp), overlap=overlap, mode=blend,
            sw_device=device, device=torch.device("cpu"), progress=progress,
        )
    return torch.as_tensor(out)[0].float()


def run_skip(model: nn.Module, x: torch.Tensor, body: npt.NDArray[np.bool_], *,
                         roi: tuple[int, int, int], overlap: float, blend: str, sw_batch_size: int,
                         device: torch.device, amp: torch.dtype | None, progress: bool) -> torch.Tensor:
    """MONAI's grid and blending, evaluating only windows that intersect ``body`` → logits on CPU.

    When every window intersects the body, this is :func:`run_full` (MONAI itself).
    Otherwise voxels outside every evaluated window get logits 0 (they are outside the body and
    are overwritten by the caller).
    """
    from monai.data.utils import compute_importance_map

    pads = pad_sizes(x.shape[1:], roi)
    slices = grid(body.shape, roi, overlap)
    todo = intersecting(body, slices, roi)
    if len(todo) == len(slices):  # nothing to skip: MONAI's own loop, no extra cost
        return run_full(model, x, roi=roi, overlap=overlap, blend=blend, sw_batch_size=sw_batch_size,
                                    device=device, amp=amp, progress=progress)
    if any(a or b for a, b in pads):
        x = torch.nn.functional.pad(x, [v for a, b in reversed(pads) for v in (a, b)])
    weight = None if blend == "constant" else \
        compute_importance_map(roi, mode=blend, sigma_scale=0.125, device="cpu", dtype=torch.float32)
    predictor = _Predictor(model, device, amp)
    out: torch.Tensor | None = None
    count = torch.zeros(x.shape[1:], dtype=torch.float32)
    batches = range(0, len(todo), sw_batch_size)
    if progress:
        batches = progress_bar(batches, desc="windows", unit="batch", leave=False)
    with torch.no_grad():
        for b in batches:
            group = todo[b:b + sw_batch_size]
            pred = predictor(torch.stack([x[(slice(None), *s)] for s in group])).to("cpu")
            if out is None:
                out = torch.zeros((pred.shape[1], *x.shape[1:]), dtype=torch.float32)
            for p, s in zip(pred, group):
                if weight is None:  # constant blending: weight 1 (no multiply, same numbers)
                    out[(slice(None), *s)] += p
                    count[s] += 1.0
                else:
                    out[(slice(None), *s)] += p * weight
                    count[s] += weight
    if out is None:  # no window touches the body: everything is background
        out = torch.zeros((n_classes(model, x, roi, device), *x.shape[1:]), dtype=torch.float32)
    out /= count.clamp_min(torch.finfo(torch.float32).tiny)
    if any(a or b for a, b in pads):
        out = out[(slice(None), *(slice(a, n - b) for (a, b), n in zip(pads, x.shape[1:])))]
    return out
