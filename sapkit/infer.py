"""Whole-body sliding-window inference that skips windows outside the body (SPEC §5).

A whole-body MRI volume is mostly air: the torso is narrow compared with the field of view, and
neck, head and legs are narrower still. :func:`predict_probabilities` lays MONAI's window grid
over the **full** volume (``roi``, ``overlap``, exactly as ``monai.inferers.
sliding_window_inference`` does), but runs the network only on the windows that intersect the
body mask. Every window containing a body voxel is evaluated, and evaluated windows are blended
in MONAI's order with MONAI's weights, so inside the body the result equals full-volume
inference (up to float rounding of batched convolutions); outside the body the output is set to
the background class (lesion probability 0).

Other options: uniform (``constant``, the paper's) or ``gaussian`` blending, ``sw_batch_size``,
automatic mixed precision on CUDA only, and flip test-time augmentation over all 8 combinations
of the 3 axis flips (exactly flip-equivariant).

Arrays are in the file's voxel order: ``image`` (C, X, Y, Z) float32 scaled to [0, 1]
(:func:`sapkit.preprocess.scale_intensity`), probabilities (K, X, Y, Z) float32 summing to 1.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import cc3d
import nibabel as nib
import numpy as np
import numpy.typing as npt
import pandas as pd
import torch
from scipy import ndimage
from torch import nn

from sapkit.errors import CheckpointError, ConfigError, SapkitError

__all__ = [
    "LESION_COLUMNS",
    "WindowCount",
    "body_mask",
    "window_slices",
    "count_windows",
    "predict_probabilities",
    "lesion_probability",
    "skeleton_labels",
    "lesion_table",
    "load_model",
    "resolve_device",
    "predict_manifest",
]

LESION_COLUMNS = (
    "scan_id", "lesion_id", "n_voxels", "volume_ml", "max_probability", "mean_probability",
    "centroid_x", "centroid_y", "centroid_z", "bone_region",
)
_BLENDS = ("constant", "gaussian")


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
    dilation_voxels: int = 2,
) -> npt.NDArray[np.bool_]:
    """Body mask from a scaled image: threshold, clean, fill holes, dilate.

    Steps: ``max over channels > threshold``; 26-connected specks smaller than
    ``min_component_voxels`` (noise in the air) are removed; holes are filled in 3D and then in every axial slice (axis 2 = Z, so lungs and
    bowel gas open to the airway still count as body); finally a dilation by
    ``dilation_voxels`` keeps the skin edge safely inside.

    Parameters
    ----------
    image : (C, X, Y, Z) float array in [0, 1]
        Scaled intensities (channel 0 T1, channel 1 b1000).
    threshold : float
        Intensity in (0, 1) above which a voxel is tissue in at least one channel.
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
    mask = arr.max(axis=0) > threshold
    if min_component_voxels > 1:
        mask = cc3d.dust(mask, threshold=int(min_component_voxels), connectivity=26)
    mask = ndimage.binary_fill_holes(mask)
    for z in range(mask.shape[2]):
        if mask[:, :, z].any():
            mask[:, :, z] = ndimage.binary_fill_holes(mask[:, :, z])
    if dilation_voxels:
        mask = ndimage.binary_dilation(mask, iterations=dilation_voxels)
    return mask


def _pad_sizes(shape: Sequence[int], roi: Sequence[int]) -> list[tuple[int, int]]:
    """MONAI's padding of a volume smaller than the ROI: (diff // 2, diff - diff // 2) per axis."""
    out = []
    for n, r in zip(shape, roi):
        diff = max(r - n, 0)
        out.append((diff // 2, diff - diff // 2))
    return out


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
    from monai.data.utils import dense_patch_slices

    roi = _check_roi(roi)
    if not 0 <= overlap < 1:
        raise ConfigError(f"overlap must be in [0, 1), got {overlap}; the paper uses 0.5")
    padded = [n + a + b for n, (a, b) in zip(shape, _pad_sizes(shape, roi))]
    interval = [r if r == n else max(int(r * (1 - overlap)), 1) for n, r in zip(padded, roi)]
    return [tuple(slice(int(a.start), int(a.stop)) for a in s)  # type: ignore[misc]
            for s in dense_patch_slices(padded, roi, interval)]


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
    padded = np.pad(body, _pad_sizes(body.shape, _check_roi(roi)))
    return WindowCount(len(slices), sum(1 for s in slices if padded[s].any()))


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
    amp : bool
        Mixed precision (float16 autocast); used on CUDA only, ignored on CPU.
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
        ``image`` not 4D, or ``body`` of another shape.
    """
    x = _as_image_tensor(image)
    roi = _check_roi(roi)
    if blend not in _BLENDS:
        raise ConfigError(f"blend must be one of {_BLENDS}, got {blend!r}; the paper uses constant")
    if sw_batch_size < 1:
        raise ConfigError(f"sw_batch_size must be ≥ 1, got {sw_batch_size}")
    if not 0 <= overlap < 1:
        raise ConfigError(f"overlap must be in [0, 1), got {overlap}; the paper uses 0.5")
    _check_roi_fits(roi, model)
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
            k = _n_classes(model, x, roi, dev)
            full = np.zeros((k, *x.shape[1:]), np.float32)
            full[0] = 1.0
            return full
        inner = predict_probabilities(
            model, x[(slice(None), *box)], roi=roi, overlap=overlap, blend=blend, sw_batch_size=sw_batch_size,
            skip_background=skip_background, crop_to_body=False, tta_flip=tta_flip, device=dev, amp=amp,
            body=np.ascontiguousarray(body[box]), progress=progress,
        )
        full = np.zeros((inner.shape[0], *x.shape[1:]), np.float32)
        full[0] = 1.0
        full[(slice(None), *box)] = inner
        return full
    use_amp = bool(amp) and dev.type == "cuda"
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
            logits = _sliding_window_skip(model, xf, np.ascontiguousarray(bf), roi=roi, overlap=overlap,
                                          blend=blend, sw_batch_size=sw_batch_size, device=dev, amp=use_amp,
                                          progress=progress)
        else:
            logits = _sliding_window_full(model, xf, roi=roi, overlap=overlap, blend=blend,
                                          sw_batch_size=sw_batch_size, device=dev, amp=use_amp, progress=progress)
        prob = torch.softmax(logits, dim=0)
        if skip_background:
            outside = torch.from_numpy(~np.ascontiguousarray(bf))
            prob[:, outside] = 0.0
            prob[0, outside] = 1.0
        if axes:
            prob = torch.flip(prob, dims)
        total = prob if total is None else total.add_(prob)
        n += 1
    assert total is not None
    if n > 1:
        total /= n
    return total.numpy().astype(np.float32, copy=False)


def lesion_probability(model: nn.Module, image: npt.NDArray | torch.Tensor, **kwargs: Any) -> npt.NDArray[np.float32]:
    """Class-1 (lesion) probability map (X, Y, Z) float32 in [0, 1]; options as :func:`predict_probabilities`."""
    return predict_probabilities(model, image, **kwargs)[1]


def skeleton_labels(probabilities: npt.NDArray, *, majority_vote: bool = True) -> npt.NDArray[np.int16]:
    """Skeleton label map by argmax, optionally one class per connected bone piece.

    Parameters
    ----------
    probabilities : (K, X, Y, Z) float array
        Class scores (probabilities or logits), class 0 = background.
    majority_vote : bool
        Give every 6-connected foreground component the class most of its voxels have
        (ties → the lower class index), so a bone piece never carries two labels.

    Returns
    -------
    (X, Y, Z) int16
        Labels in 0..K-1.

    Examples
    --------
    >>> p = np.zeros((3, 5, 1, 1), np.float32); p[0, 0] = 1; p[1, 1:4] = 1; p[2, 4] = 1
    >>> skeleton_labels(p, majority_vote=False)[:, 0, 0].tolist()
    [0, 1, 1, 1, 2]
    >>> skeleton_labels(p)[:, 0, 0].tolist()   # voxels 1-4 are one piece, mostly class 1
    [0, 1, 1, 1, 1]
    """
    probs = np.asarray(probabilities)
    if probs.ndim != 4:
        raise SapkitError(f"probabilities must be (K, X, Y, Z), got shape {probs.shape}")
    labels = probs.argmax(axis=0).astype(np.int16)
    if not majority_vote or not (labels > 0).any():
        return labels
    comps, n = cc3d.connected_components(labels > 0, connectivity=6, return_N=True)
    k = probs.shape[0]
    votes = np.bincount(comps.ravel().astype(np.int64) * k + labels.ravel(), minlength=(n + 1) * k).reshape(n + 1, k)
    votes[:, 0] = -1  # a foreground piece never becomes background
    winner = votes.argmax(axis=1).astype(np.int16)
    winner[0] = 0
    return winner[comps]


def lesion_table(
    prob_map: npt.NDArray, *, threshold: float, spacing_mm: Sequence[float], min_volume_ml: float = 0.0,
    connectivity: int = 26, skeleton: npt.NDArray | None = None, scan_id: str = "",
    class_names: dict[int, str] | None = None,
) -> tuple[npt.NDArray[np.uint8], pd.DataFrame]:
    """Binarise a probability map, drop small lesions and describe each remaining lesion.

    Parameters
    ----------
    prob_map : (X, Y, Z) float array in [0, 1]
        Lesion probability.
    threshold : float
        A voxel is lesion when ``prob_map >= threshold``.
    spacing_mm : 3 floats
        Voxel size in mm (volume in mL = n_voxels × voxel volume / 1000).
    min_volume_ml : float
        Lesions (connected components) smaller than this are removed.
    connectivity : {6, 18, 26}
        Connectivity of lesion components (default 26).
    skeleton : (X, Y, Z) int array, optional
        Skeleton label map; a lesion's ``bone_region`` is the class most of its bone voxels have,
        ``"none"`` if it touches no labelled bone (e.g. ribs), ``""`` without a skeleton.
    scan_id : str
        Copied into the table.
    class_names : dict, optional
        Skeleton class names (default :data:`sapkit.labelmaps.SKELETON_CLASSES`).

    Returns
    -------
    mask : (X, Y, Z) uint8
        1 inside kept lesions.
    table : DataFrame
        One row per kept lesion with :data:`LESION_COLUMNS` (empty with those columns if none).
    """
    from sapkit.labelmaps import SKELETON_CLASSES

    prob = np.asarray(prob_map)
    if prob.ndim != 3:
        raise SapkitError(f"prob_map must be (X, Y, Z), got shape {prob.shape}")
    if not 0 < threshold <= 1:
        raise ConfigError(f"threshold must be in (0, 1], got {threshold}")
    if min_volume_ml < 0:
        raise ConfigError(f"min_volume_ml must be ≥ 0 mL, got {min_volume_ml}")
    if connectivity not in (6, 18, 26):
        raise ConfigError(f"connectivity must be 6, 18 or 26, got {connectivity!r}")
    if skeleton is not None and skeleton.shape != prob.shape:
        raise SapkitError(f"skeleton shape {skeleton.shape} ≠ probability map shape {prob.shape}; use the same grid")
    names = dict(class_names or SKELETON_CLASSES)
    voxel_ml = float(np.prod(spacing_mm)) / 1000.0
    comps, n = cc3d.connected_components(prob >= threshold, connectivity=connectivity, return_N=True)
    rows = []
    keep = np.zeros(n + 1, dtype=bool)
    if n:
        stats = cc3d.statistics(comps)
        flat = comps.ravel()
        order = np.argsort(flat, kind="stable")
        bounds = np.searchsorted(flat[order], np.arange(n + 2))
        pflat = prob.ravel()
        sflat = None if skeleton is None else np.asarray(skeleton).ravel()
        for comp in range(1, n + 1):
            idx = order[bounds[comp]:bounds[comp + 1]]
            n_vox = int(idx.size)
            volume_ml = n_vox * voxel_ml
            if volume_ml < min_volume_ml:
                continue
            keep[comp] = True
            region = ""
            if sflat is not None:
                bones = sflat[idx]
                bones = bones[bones > 0]
                region = names.get(int(np.bincount(bones).argmax()), "unknown") if bones.size else "none"
            vals = pflat[idx]
            cx, cy, cz = (float(c) for c in stats["centroids"][comp])
            rows.append((scan_id, len(rows) + 1, n_vox, volume_ml, float(vals.max()), float(vals.mean()),
                         cx, cy, cz, region))
    mask = keep[comps].astype(np.uint8)
    return mask, pd.DataFrame(rows, columns=list(LESION_COLUMNS))


def load_model(checkpoint: str | Path | nn.Module, model_config: Any, *, out_channels: int = 2) -> nn.Module:
    """A network with a checkpoint's weights (``weights_only=True``), on the CPU.

    Parameters
    ----------
    checkpoint : str, Path or torch.nn.Module
        A sapkit checkpoint (``sapkit.checkpoints``) or a bare state dict file; a module is
        returned as is.
    model_config : sapkit.config.ModelConfig
        Architecture; the ``model`` section stored in the checkpoint, when present, wins.
    out_channels : int
        Classes of the head (2 lesion, 10 skeleton).

    Raises
    ------
    CheckpointError
        Unsafe/unreadable file or weights that do not fit the architecture.
    """
    if isinstance(checkpoint, nn.Module):
        return checkpoint
    from sapkit.checkpoints import load_checkpoint
    from sapkit.models import build_model

    payload = load_checkpoint(checkpoint)
    state = payload.get("state_dict", payload) if isinstance(payload, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"checkpoint {checkpoint} holds no state_dict of tensors; pass a sapkit checkpoint")
    stored = payload.get("config", {}).get("model") if isinstance(payload.get("config"), dict) else None
    if isinstance(stored, dict):
        fields = {f.name for f in dataclasses.fields(model_config)}
        stored = {k: tuple(v) if isinstance(v, list) else v for k, v in stored.items() if k in fields}
        model_config = dataclasses.replace(model_config, **stored)
    model = build_model(model_config, out_channels)
    state = {k[7:] if k.startswith("module.") else k: v for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(
            f"checkpoint {checkpoint} does not fit a {model_config.backbone} with {out_channels} outputs "
            f"({first}); check model.* settings and the checkpoint's task"
        ) from None
    return model


def predict_manifest(
    checkpoint: str | Path | nn.Module,
    manifest: Any,
    out_dir: str | Path,
    *,
    config: Any,
    threshold: float | None = None,
    min_volume_ml: float = 0.0,
    scan_ids: Sequence[str] | None = None,
    skeleton_checkpoint: str | Path | nn.Module | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Predict lesion probability maps (and optionally masks + lesion tables) for a manifest.

    Writes, per scan, into ``out_dir``:

    - ``<scan_id>_prob.nii.gz`` — lesion probability on the input grid, with the input's affine
      and qform/sform codes. ``config.infer.prob_dtype`` ``float32`` stores float32;
      ``float16`` stores 16 bits per voxel — NIfTI-1 has no float16 type, so the map is
      quantised to uint16 with ``scl_slope = 1/65535`` (readers that apply the slope, such as
      nibabel's ``get_fdata``, see values in [0, 1] within 7.7e-6); masks and tables are
      computed from the stored values so they agree with the file;
    - with ``threshold``: ``<scan_id>_mask.nii.gz`` (uint8) and ``<scan_id>_lesions.csv``
      (:data:`LESION_COLUMNS`; bone region from the manifest's skeleton label, else from
      ``skeleton_checkpoint`` when given);

    and ``predictions.csv`` with one row per scan (rows of other scans already in the file are
    kept, so folds can predict into one folder). Every file is written atomically.

    Parameters
    ----------
    checkpoint : str, Path or torch.nn.Module
        Lesion model (2 outputs).
    manifest : str, Path or sapkit.manifest.Manifest
        Scans to read (``manifest.yaml`` or its folder).
    out_dir : str or Path
        Output folder (created).
    config : sapkit.config.Config
        Uses ``infer``, ``model``, ``preprocess``, ``eval.connectivity`` and ``device``.
    threshold : float, optional
        Lesion threshold on the probability map.
    min_volume_ml : float
        Lesions below this volume are dropped from mask and table.
    scan_ids : sequence of str, optional
        Subset of scans (default: all).
    skeleton_checkpoint : str, Path or torch.nn.Module, optional
        Skeleton model (10 outputs) used for ``bone_region`` when a scan has no skeleton label.
    device : str or torch.device, optional
        Overrides ``config.device``.
    progress : bool
        tqdm progress bar over scans.

    Returns
    -------
    DataFrame
        scan_id, prob_path, mask_path, lesions_path, n_lesions, n_windows, n_windows_evaluated,
        seconds.
    """
    from sapkit.data import load_case
    from sapkit.io import atomic_path, save_nifti
    from sapkit.manifest import Manifest, load_manifest

    man = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
    inf = config.infer
    dev = resolve_device(device if device is not None else config.device)
    model = load_model(checkpoint, config.model, out_channels=2)
    skel_model = None if skeleton_checkpoint is None else load_model(skeleton_checkpoint, config.model, out_channels=10)
    ids = list(man.scans["scan_id"]) if scan_ids is None else list(scan_ids)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    masked = inf.skip_background or inf.crop_to_body
    options = dict(roi=inf.roi, overlap=inf.overlap, blend=inf.blend, sw_batch_size=inf.sw_batch_size,
                   skip_background=inf.skip_background, crop_to_body=inf.crop_to_body, tta_flip=inf.tta_flip,
                   device=dev, amp=inf.amp)
    iterator: Iterable[str] = ids
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(ids, desc="predict", unit="scan")
    rows = []
    for scan_id in iterator:
        t0 = time.perf_counter()
        case = load_case(man, scan_id, percentiles=tuple(config.preprocess.clip_percentiles))
        body = body_mask(case.image) if masked else np.ones(case.shape, bool)
        windows = count_windows(body, roi=inf.roi, overlap=inf.overlap, crop_to_body=inf.crop_to_body)
        prob = lesion_probability(model, case.image, body=body if masked else None, **options)
        prob, prob_path = _save_probability(prob, case.affine, out / f"{scan_id}_prob.nii.gz", header=case.header,
                                            dtype=inf.prob_dtype)
        mask_path = lesions_path = ""
        n_lesions = -1
        if threshold is not None:
            skeleton = case.skeleton
            if skeleton is None and skel_model is not None:
                skeleton = skeleton_labels(predict_probabilities(skel_model, case.image, body=body, **options))
            mask, table = lesion_table(prob, threshold=threshold, spacing_mm=case.spacing_mm,
                                       min_volume_ml=min_volume_ml, connectivity=config.eval.connectivity,
                                       skeleton=skeleton, scan_id=scan_id)
            mask_path = str(save_nifti(mask, case.affine, out / f"{scan_id}_mask.nii.gz", header=case.header,
                                       dtype=np.uint8))
            lesions_path = str(out / f"{scan_id}_lesions.csv")
            with atomic_path(Path(lesions_path)) as tmp:
                table.to_csv(tmp, index=False)
            n_lesions = len(table)
        rows.append((scan_id, str(prob_path), mask_path, lesions_path, n_lesions, windows.n_total,
                     windows.n_evaluated if masked else windows.n_total,
                     round(time.perf_counter() - t0, 3)))
    summary = pd.DataFrame(rows, columns=["scan_id", "prob_path", "mask_path", "lesions_path", "n_lesions",
                                          "n_windows", "n_windows_evaluated", "seconds"])
    table_path = out / "predictions.csv"
    merged = summary
    if table_path.is_file():  # several folds predict into one folder: keep the other scans' rows
        previous = pd.read_csv(table_path, dtype={"scan_id": str}, keep_default_na=False)
        previous = previous[~previous["scan_id"].isin(summary["scan_id"])]
        merged = pd.concat([previous, summary], ignore_index=True).sort_values("scan_id", kind="stable")
    with atomic_path(table_path) as tmp:
        merged.to_csv(tmp, index=False)
    return summary


# ----------------------------------------------------------------------------------------------
def _save_probability(prob: npt.NDArray[np.float32], affine: npt.NDArray, path: Path, *, header: Any,
                      dtype: str) -> tuple[npt.NDArray[np.float32], Path]:
    """Write a probability map; ``float16`` → uint16 with slope 1/65535. Returns (stored values, path)."""
    from sapkit.io import atomic_path, save_nifti

    if dtype == "float32":
        return prob, save_nifti(prob, affine, path, header=header, dtype=np.float32)
    if dtype != "float16":
        raise ConfigError(f"infer.prob_dtype must be float16 or float32, got {dtype!r}")
    slope = np.float32(1.0 / 65535.0)
    quantised = np.round(np.clip(prob, 0.0, 1.0) * 65535.0).astype(np.uint16)
    new_header = nib.Nifti1Header()
    if header is not None:
        new_header.set_xyzt_units(*header.get_xyzt_units())
    img = nib.Nifti1Image(quantised, affine, new_header)
    img.set_data_dtype(np.uint16)
    img.set_qform(affine, code=int(header["qform_code"]) if header is not None else 1)
    img.set_sform(affine, code=int(header["sform_code"]) if header is not None else 1)
    img.header.set_slope_inter(float(slope), 0.0)
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
    return (quantised.astype(np.float32) * slope).astype(np.float32), path


def _check_roi(roi: Sequence[int]) -> tuple[int, int, int]:
    try:
        out = tuple(int(r) for r in roi)
    except (TypeError, ValueError):
        raise ConfigError(f"roi must be 3 positive integers (voxels), got {roi!r}") from None
    if len(out) != 3 or any(r < 1 for r in out):
        raise ConfigError(f"roi must be 3 positive integers (voxels), got {roi!r}; e.g. [96, 96, 96]")
    return out  # type: ignore[return-value]


def _check_roi_fits(roi: tuple[int, int, int], model: nn.Module) -> None:
    """Windows must be divisible by the network's downsampling factor (sapkit networks only)."""
    from sapkit.models import backbone_of, downsample_factor

    try:
        factor, backbone = downsample_factor(model), backbone_of(model)
    except ConfigError:  # not built by sapkit.models: no known constraint
        return
    if any(r % factor for r in roi):
        raise ConfigError(f"infer.roi {list(roi)} must be divisible by {factor} for the {backbone} backbone; "
                          f"use e.g. {[max(factor, r // factor * factor) for r in roi]}")


def _bounding_box(mask: npt.NDArray[np.bool_]) -> tuple[slice, slice, slice] | None:
    if not mask.any():
        return None
    out = []
    for ax in range(3):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != ax)))
        out.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(out)  # type: ignore[return-value]


def _n_classes(model: nn.Module, x: torch.Tensor, roi: Sequence[int], device: torch.device) -> int:
    pads = _pad_sizes(x.shape[1:], roi)
    probe = torch.nn.functional.pad(x, [v for a, b in reversed(pads) for v in (a, b)])
    with torch.no_grad():
        return int(model(probe[None, :, :roi[0], :roi[1], :roi[2]].to(device)).shape[1])


def _as_image_tensor(image: npt.NDArray | torch.Tensor) -> torch.Tensor:
    x = image.detach().cpu() if isinstance(image, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(image))
    if x.ndim != 4:
        raise SapkitError(f"image must be channels-first (C, X, Y, Z), got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise SapkitError("image holds NaN/Inf values; scale it with sapkit.preprocess.scale_intensity first")
    return x.float()


class _Predictor:
    """Runs the network on a batch of windows (autocast on CUDA), returns float32 logits."""

    def __init__(self, model: nn.Module, device: torch.device, amp: bool) -> None:
        self.model, self.device, self.amp = model, device, amp

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        if not self.amp:
            return self.model(batch.to(self.device)).float()
        with torch.autocast(device_type="cuda", dtype=torch.float16):
            return self.model(batch.to(self.device)).float()


def _sliding_window_full(model: nn.Module, x: torch.Tensor, *, roi: tuple[int, int, int], overlap: float,
                         blend: str, sw_batch_size: int, device: torch.device, amp: bool,
                         progress: bool) -> torch.Tensor:
    """Plain MONAI sliding-window inference over the whole volume → logits (K, X, Y, Z) on CPU."""
    from monai.inferers import sliding_window_inference

    with torch.no_grad():
        out = sliding_window_inference(
            x[None], roi, sw_batch_size, _Predictor(model, device, amp), overlap=overlap, mode=blend,
            sw_device=device, device=torch.device("cpu"), progress=progress,
        )
    return torch.as_tensor(out)[0].float()


def _sliding_window_skip(model: nn.Module, x: torch.Tensor, body: npt.NDArray[np.bool_], *,
                         roi: tuple[int, int, int], overlap: float, blend: str, sw_batch_size: int,
                         device: torch.device, amp: bool, progress: bool) -> torch.Tensor:
    """MONAI's grid and blending, evaluating only windows that intersect ``body`` → logits on CPU.

    Voxels outside every evaluated window get logits 0 (they are outside the body and are
    overwritten by the caller).
    """
    from monai.data.utils import compute_importance_map

    pads = _pad_sizes(x.shape[1:], roi)
    if any(a or b for a, b in pads):
        flat = [v for a, b in reversed(pads) for v in (a, b)]
        x = torch.nn.functional.pad(x, flat)
        body = np.pad(body, pads)
    slices = window_slices(x.shape[1:], roi=roi, overlap=overlap)
    todo = [s for s in slices if body[s].any()]
    weight = compute_importance_map(roi, mode=blend, sigma_scale=0.125, device="cpu", dtype=torch.float32)
    predictor = _Predictor(model, device, amp)
    out: torch.Tensor | None = None
    count = torch.zeros(x.shape[1:], dtype=torch.float32)
    batches = range(0, len(todo), sw_batch_size)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="windows", unit="batch", leave=False)
    with torch.no_grad():
        for b in batches:
            group = todo[b:b + sw_batch_size]
            win = torch.stack([x[(slice(None), *s)] for s in group])
            pred = predictor(win).to("cpu")
            if out is None:
                out = torch.zeros((pred.shape[1], *x.shape[1:]), dtype=torch.float32)
            for p, s in zip(pred, group):
                out[(slice(None), *s)] += p * weight
                count[s] += weight
    if out is None:  # no window touches the body: everything is background
        out = torch.zeros((_n_classes(model, x, roi, device), *x.shape[1:]), dtype=torch.float32)
    out /= count.clamp_min(torch.finfo(torch.float32).tiny)
    if any(a or b for a, b in pads):
        out = out[(slice(None), *(slice(a, n - b) for (a, b), n in zip(pads, x.shape[1:])))]
    return out
