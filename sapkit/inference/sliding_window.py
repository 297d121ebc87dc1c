"""Whole-body sliding-window inference that skips windows outside the body (docs/method.md §5).

A whole-body MRI volume is mostly air: the torso is narrow compared with the field of view, and
neck, head and legs are narrower still. :func:`predict_probabilities` lays MONAI's window grid
over the **full** volume (``roi``, ``overlap``, exactly as ``monai.inferers.
sliding_window_inference`` does), but runs the network only on the windows that intersect the
body mask. Every window containing a body voxel is evaluated, and evaluated windows are blended
in MONAI's order with MONAI's weights, so inside the body the result equals full-volume
inference (up to float rounding of batched convolutions); outside the body the output is set to
the background class (lesion probability 0). When every window touches the body, the pass is
MONAI's own ``sliding_window_inference`` (skipping then costs only the body mask).

Other options: uniform (``constant``, the paper's) or ``gaussian`` blending, ``sw_batch_size``,
automatic mixed precision on CUDA only, and flip test-time augmentation over all 8 combinations
of the 3 axis flips (exactly flip-equivariant).

Arrays are in the file's voxel order: ``image`` (C, X, Y, Z) float32 scaled to [0, 1]
(:func:`sapkit.data.intensity.scale_intensity`), probabilities (K, X, Y, Z) float32 summing to 1.
Checkpoints and manifests: :mod:`sapkit.inference.predict`; thresholding into lesions: :mod:`sapkit.inference.postprocess`.
"""

from __future__ import annotations

import itertools
import typing
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from sapkit.config import Blend
from sapkit.errors import ConfigError, SapkitError
from sapkit.imaging.components import label_components, remove_small_components
from sapkit.inference import _window_ops as _infer_ops
from sapkit.networks.factory import check_roi_fits
from sapkit.networks.precision import autocast_dtype
from sapkit.validation import check_roi

__all__ = [
    "WindowCount",
    "body_mask",
    "window_slices",
    "count_windows",
    "predict_probabilities",
    "lesion_probability",
    "skeleton_labels",
    "resolve_device",
]

_BLENDS: tuple[str, ...] = typing.get_args(Blend)


@dataclass(frozen=True)
class WindowCount:
    """Windows of the full-volume grid and how many intersect the body.

    Attributes
    ----------
    n_total : int
        Windows of MONAI's grid over the whole (padded) volume.
    n_evaluated : int
        Windows intersecting the body mask (the ones the network runs on).
    """

    n_total: int
    n_evaluated: int

    @property
    def fraction_skipped(self) -> float:
        """Share of windows not evaluated, in [0, 1]."""
        return 1.0 - self.n_evaluated / self.n_total if self.n_total else 0.0


def body_mask(
    image: npt.NDArray | torch.Tensor, *, threshold: float = 0.05, min_component_voxels: int = 64,
    dilation_voxels: int = 2, channels: tuple[int, ...] = (0,),
) -> npt.NDArray[np.bool_]:
    """Body mask from a scaled image: threshold, clean, fill holes, dilate.

    Steps: ``max over the given channels > threshold``; 26-connected specks smaller than
    ``min_component_voxels`` (noise in the air) are removed; holes are filled in every axial slice
    (axis 2 = Z; a 4-connected background region not reaching the slice's edge is a hole, so lungs
    and bowel gas open to the airway still count as body; this also fills every 3D cavity);
    finally a dilation by ``dilation_voxels`` (6-neighbourhood, repeated) keeps the skin edge
    safely inside.

    Parameters
    ----------
    image : (C, X, Y, Z) float array in [0, 1]
        Scaled intensities (channel 0 T1, channel 1 b1000).
    threshold : float
        Intensity in (0, 1) above which a voxel is tissue in at least one of ``channels``.
    channels : tuple of int
        Channels that outline the body. Default T1 only: fat makes the skin line bright, while the
        b1000 channel's noise floor in air scales to 0.15–0.4 after percentile scaling and would
        turn the whole field of view into "body".
    min_component_voxels : int
        Smaller connected pieces are noise (voxels).
    dilation_voxels : int
        Safety margin in voxels (≥ 0).

    Returns
    -------
    (X, Y, Z) bool
        True inside the body.

    Examples
    --------
    >>> img = np.zeros((2, 20, 20, 10), np.float32); img[0, 5:15, 5:15, :] = 0.5
    >>> img[:, 9:11, 9:11, :] = 0.0    # a dark tube inside (an airway): filled per slice
    >>> m = body_mask(img, dilation_voxels=0)
    >>> int(m.sum()), bool(m[10, 10, 5]), bool(m[2, 2, 5])
    (1000, True, False)
    >>> img[1, 1, 1, 1] = 0.9          # one noise voxel in the air is dropped
    >>> int(body_mask(img, dilation_voxels=0).sum())
    1000
    """
    arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if arr.ndim != 4:
        raise SapkitError(f"image must be channels-first (C, X, Y, Z), got shape {arr.shape}")
    if not 0 < threshold < 1:
        raise ConfigError(f"body threshold must be in (0, 1) on the scaled image, got {threshold}; e.g. 0.05")
    if dilation_voxels < 0:
        raise ConfigError(f"dilation_voxels must be ≥ 0, got {dilation_voxels}")
    if not channels or any(not 0 <= c < arr.shape[0] for c in channels):
        raise ConfigError(f"body-mask channels {channels} must index the image's {arr.shape[0]} channels")
    mask = arr[list(channels)].max(axis=0) > threshold
    if min_component_voxels > 1:
        mask = remove_small_components(mask, int(min_component_voxels), connectivity=26)
    mask = _infer_ops.fill_holes_axial(mask)
    for _ in range(dilation_voxels):
        mask = _infer_ops.dilate_6(mask)
    return mask


def window_slices(shape: Sequence[int], *, roi: Sequence[int], overlap: float) -> list[tuple[slice, slice, slice]]:
    """MONAI's sliding-window grid for a volume of ``shape`` (after MONAI's padding to ≥ ``roi``).

    Parameters
    ----------
    shape : 3 ints
        Spatial shape (X, Y, Z) of the unpadded volume.
    roi : 3 ints
        Window size in voxels.
    overlap : float
        In [0, 1); the scan interval is ``int(roi × (1 − overlap))`` (MONAI's rule).

    Returns
    -------
    list of 3-tuples of slice
        Window positions in the padded volume, in MONAI's order.

    Examples
    --------
    >>> [s[2] for s in window_slices((64, 64, 100), roi=(64, 64, 64), overlap=0.5)]
    [slice(0, 64, None), slice(32, 96, None), slice(36, 100, None)]
    """
    roi = check_roi(roi)
    if not 0 <= overlap < 1:
        raise ConfigError(f"overlap must be in [0, 1), got {overlap}; the paper uses 0.5")
    return _infer_ops.grid(shape, roi, overlap)


def count_windows(
    body: npt.NDArray[np.bool_], *, roi: Sequence[int], overlap: float, crop_to_body: bool = False,
) -> WindowCount:
    """How many windows of the full grid intersect ``body`` ((X, Y, Z) bool).

    With ``crop_to_body``, ``n_evaluated`` counts the windows of the grid laid over the body's
    bounding box instead (see :func:`predict_probabilities`); ``n_total`` stays the full grid.
    """
    if crop_to_body:
        total = len(window_slices(body.shape, roi=roi, overlap=overlap))
        box = _bounding_box(body)
        inner = 0 if box is None else count_windows(np.ascontiguousarray(body[box]), roi=roi, overlap=overlap).n_evaluated
        return WindowCount(total, inner)
    slices = window_slices(body.shape, roi=roi, overlap=overlap)
    return WindowCount(len(slices), len(_infer_ops.intersecting(body, slices, check_roi(roi))))


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``auto``/None → CUDA if available else CPU; otherwise ``torch.device(device)``."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but no CUDA GPU is visible; use device=cpu or auto")
    return dev


def predict_probabilities(
    model: nn.Module,
    image: npt.NDArray | torch.Tensor,
    *,
    roi: Sequence[int],
    overlap: float = 0.5,
    blend: str = "constant",
    sw_batch_size: int = 4,
    skip_background: bool = True,
    crop_to_body: bool = False,
    tta_flip: bool = False,
    device: str | torch.device | None = "cpu",
    amp: bool = True,
    amp_dtype: str = "auto",
    body: npt.NDArray[np.bool_] | None = None,
    progress: bool = False,
) -> npt.NDArray[np.float32]:
    """Softmax probabilities of ``model`` over a whole volume by sliding windows.

    Parameters
    ----------
    model : torch.nn.Module
        Maps (B, C, *roi) to logits (B, K, *roi). It is moved to ``device`` and set to eval mode.
    image : (C, X, Y, Z) float32 array or tensor
        Scaled image; any spatial shape (smaller than ``roi`` is padded like MONAI does).
    roi : 3 ints
        Window size in voxels.
    overlap : float
        Window overlap in [0, 1) (paper: 0.5).
    blend : {"constant", "gaussian"}
        Weighting of overlapping windows (paper: uniform = constant).
    sw_batch_size : int
        Windows per forward pass.
    skip_background : bool
        Run the network only on windows intersecting the body mask and set the output outside
        the body to the background class. False = plain MONAI ``sliding_window_inference``.
    crop_to_body : bool
        Faster, but **not** identical to full-volume inference: crop the volume to the body
        mask's bounding box, infer there (with ``skip_background``'s rule inside the crop) and
        fill the rest with background. The window grid then follows the body, so a wide
        field of view costs far fewer windows (see :func:`count_windows`); the output inside
        the body differs from full-volume inference by the network's sensitivity to window
        placement.
    tta_flip : bool
        Average the probabilities over the 8 combinations of flips of the 3 spatial axes (8×
        the cost; the result is exactly flip-equivariant).
    device : str or torch.device or None
        Where the network runs (``auto``/None picks CUDA when available). The stitched output
        stays on the CPU.
    amp, amp_dtype : bool, {"auto", "bfloat16", "float16"}
        Mixed precision on CUDA (``auto``: bfloat16 where the GPU supports it, else float16;
        :mod:`sapkit.networks.precision`); ignored on the CPU.
    body : (X, Y, Z) bool, optional
        Body mask; computed with :func:`body_mask` when needed and not given.
    progress : bool
        Show a tqdm bar over window batches.

    Returns
    -------
    (K, X, Y, Z) float32
        Class probabilities in [0, 1], summing to 1 over K.

    Raises
    ------
    ConfigError
        Invalid ROI, overlap, blend or batch size.
    SapkitError
        ``image`` not 4D, ``body`` of another shape, or a non-finite network output (NaN/inf weights).
    """
    x = _as_image_tensor(image)
    roi = check_roi(roi)
    if blend not in _BLENDS:
        raise ConfigError(f"blend must be one of {_BLENDS}, got {blend!r}; the paper uses constant")
    if sw_batch_size < 1:
        raise ConfigError(f"sw_batch_size must be ≥ 1, got {sw_batch_size}")
    if not 0 <= overlap < 1:
        raise ConfigError(f"overlap must be in [0, 1), got {overlap}; the paper uses 0.5")
    check_roi_fits(roi, model, what="infer.roi")
    dev = resolve_device(device)
    model = model.to(dev).eval()
    if skip_background or crop_to_body:
        if body is None:
            body = body_mask(x.numpy())
        elif tuple(body.shape) != tuple(x.shape[1:]):
            raise SapkitError(f"body mask shape {tuple(body.shape)} ≠ image shape {tuple(x.shape[1:])}")
    if crop_to_body:
        assert body is not None
        box = _bounding_box(body)
        if box is None:  # no body at all
            k = _infer_ops.n_classes(model, x, roi, dev)
            full = np.zeros((k, *x.shape[1:]), np.float32)
            full[0] = 1.0
            return full
        inner = predict_probabilities(
            model, x[(slice(None), *box)], roi=roi, overlap=overlap, blend=blend, sw_batch_size=sw_batch_size,
            skip_background=skip_background, crop_to_body=False, tta_flip=tta_flip, device=dev, amp=amp, amp_dtype=amp_dtype,
            body=np.ascontiguousarray(body[box]), progress=progress,
        )
        full = np.zeros((inner.shape[0], *x.shape[1:]), np.float32)
        full[0] = 1.0
        full[(slice(None), *box)] = inner
        return full
    half = autocast_dtype(amp, amp_dtype, dev)  # None on the CPU
    flips: Iterable[tuple[int, ...]] = [()]
    if tta_flip:
        flips = [c for k in range(4) for c in itertools.combinations((0, 1, 2), k)]
    total: torch.Tensor | None = None
    n = 0
    for axes in flips:
        dims = [a + 1 for a in axes]
        xf = torch.flip(x, dims) if axes else x
        bf = None if body is None else (np.flip(body, axes) if axes else body)
        if skip_background:
            logits = _infer_ops.run_skip(model, xf, np.ascontiguousarray(bf), roi=roi, overlap=overlap, blend=blend,
                                         sw_batch_size=sw_batch_size, device=dev, amp=half, progress=progress)
        else:
            logits = _infer_ops.run_full(model, xf, roi=roi, overlap=overlap, blend=blend,
                                         sw_batch_size=sw_batch_size, device=dev, amp=half, progress=progress)
        prob = torch.softmax(logits, dim=0)
        if axes:
            prob = torch.flip(prob, dims)
        total = prob if total is None else total.add_(prob)
        n += 1
    assert total is not None
    bad = int((~torch.isfinite(total)).any(dim=0).sum())
    if bad:
        raise SapkitError(
            f"the network's output is not finite (NaN/inf) in {bad} of {total[0].numel()} voxels; its weights are "
            "probably non-finite (a diverged training run: retrain with a lower learning rate)"
            + (", or float16 overflowed (set infer.amp=false or infer.amp_dtype=bfloat16)" if half == torch.float16 else "")
            + "; no probability map was written")
    if n > 1:
        total /= n
    if skip_background:  # outside the body: background (exact 1 / 0, as every flip would give)
        assert body is not None
        outside = torch.from_numpy(~body)
        total.masked_fill_(outside, 0.0)
        total[0].masked_fill_(outside, 1.0)
    return total.numpy().astype(np.float32, copy=False)


def lesion_probability(model: nn.Module, image: npt.NDArray | torch.Tensor, **kwargs: Any) -> npt.NDArray[np.float32]:
    """Class-1 (lesion) probability map (X, Y, Z) float32 in [0, 1]; options as :func:`predict_probabilities`."""
    return predict_probabilities(model, image, **kwargs)[1]


def skeleton_labels(probabilities: npt.NDArray, *, majority_vote: bool = False) -> npt.NDArray[np.int16]:
    """Skeleton label map by argmax, optionally one class per connected bone piece.

    Parameters
    ----------
    probabilities : (K, X, Y, Z) float array
        Class scores (probabilities or logits), class 0 = background.
    majority_vote : bool
        Give every 6-connected foreground component the class most of its voxels have
        (ties → the lower class index), so a bone piece never carries two labels. Off by default
        (docs/method.md §5: optional): where bones touch in the prediction (spine and pelvis, at 3 mm) the
        whole piece gets one class.

    Returns
    -------
    (X, Y, Z) int16
        Labels in 0..K-1.

    Examples
    --------
    >>> p = np.zeros((3, 5, 1, 1), np.float32); p[0, 0] = 1; p[1, 1:4] = 1; p[2, 4] = 1
    >>> skeleton_labels(p)[:, 0, 0].tolist()
    [0, 1, 1, 1, 2]
    >>> skeleton_labels(p, majority_vote=True)[:, 0, 0].tolist()   # voxels 1-4: one piece, mostly class 1
    [0, 1, 1, 1, 1]
    """
    probs = np.asarray(probabilities)
    if probs.ndim != 4:
        raise SapkitError(f"probabilities must be (K, X, Y, Z), got shape {probs.shape}")
    labels = probs.argmax(axis=0).astype(np.int16)
    if not majority_vote or not (labels > 0).any():
        return labels
    comps, n = label_components(labels, connectivity=6)
    k = probs.shape[0]
    votes = np.bincount(comps.ravel().astype(np.int64) * k + labels.ravel(), minlength=(n + 1) * k).reshape(n + 1, k)
    votes[:, 0] = -1  # a foreground piece never becomes background
    winner = votes.argmax(axis=1).astype(np.int16)
    winner[0] = 0
    return winner[comps]


# ----------------------------------------------------------------------------------------------
def _bounding_box(mask: npt.NDArray[np.bool_]) -> tuple[slice, slice, slice] | None:
    if not mask.any():
        return None
    out = []
    for ax in range(3):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != ax)))
        out.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(out)  # type: ignore[return-value]


def _as_image_tensor(image: npt.NDArray | torch.Tensor) -> torch.Tensor:
    x = image.detach().cpu() if isinstance(image, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(image))
    if x.ndim != 4:
        raise SapkitError(f"image must be channels-first (C, X, Y, Z), got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise SapkitError("image holds NaN/Inf values; scale it with sapkit.data.intensity.scale_intensity first")
    return x.float()


