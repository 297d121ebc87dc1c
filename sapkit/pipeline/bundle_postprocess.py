"""The post-processing of an exported MONAI bundle: ``sapkit predict``'s body mask, storage and threshold.

This file is copied verbatim into every bundle as ``scripts/sapkit_postprocess.py`` (``sapkit
export``, :mod:`sapkit.pipeline.bundle_export`), so it imports numpy, scipy, torch and MONAI only —
never sapkit. Given the lesion probability map and the scaled input image, :class:`SapkitPostprocessd`
does what ``sapkit predict`` does after the network:

1. the body mask (``sapkit.inference.sliding_window.body_mask`` with its defaults): scaled T1 >
   0.05; 26-connected pieces of fewer than 64 voxels dropped; holes filled in every axial (X, Y)
   plane, 4-connected; two dilations by the 6-neighbourhood;
2. probability 0 outside the body (``sapkit predict`` never runs the network there);
3. the map as ``sapkit predict`` stores it (``infer.prob_dtype: float16``: 16 bits,
   ``round(p × 65535) / 65535`` in float32), compared with the tuned threshold in float32
   (``prob >= t``, the kit's one threshold rule);
4. lesions (connected components, ``eval.connectivity``) below ``min_volume_ml`` dropped.

The result is ``sapkit predict --threshold t``'s ``<scan_id>_mask.nii.gz``, voxel for voxel
(tested on an exported smoke-run bundle: ``tests/pipeline/test_bundle_export.py``).
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

import numpy as np
import torch
from scipy import ndimage

__all__ = ["BODY_THRESHOLD", "BODY_MIN_VOXELS", "BODY_DILATION", "body_mask", "stored_probability", "label_map",
           "SapkitPostprocessd"]

#: Scaled T1 above which a voxel is tissue (``body_mask``'s ``threshold``).
BODY_THRESHOLD = 0.05
#: Pieces of the body mask with fewer voxels are noise in the air (``min_component_voxels``).
BODY_MIN_VOXELS = 64
#: 6-neighbourhood dilations that keep the skin edge inside (``dilation_voxels``).
BODY_DILATION = 2
_LEVELS = 65535  # the 16-bit storage of infer.prob_dtype: float16


def body_mask(t1: np.ndarray) -> np.ndarray:
    """Body mask (X, Y, Z) bool of a scaled T1 volume (values in [0, 1])."""
    mask = np.asarray(t1) > BODY_THRESHOLD
    labels, n = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    if n:
        counts = np.bincount(labels.ravel())
        keep = counts >= BODY_MIN_VOXELS
        keep[0] = False
        mask = keep[labels]
    for z in np.flatnonzero(mask.any(axis=(0, 1))):  # holes of every axial plane, 4-connected background
        mask[:, :, z] = ndimage.binary_fill_holes(mask[:, :, z])
    if BODY_DILATION:
        mask = ndimage.binary_dilation(mask, structure=ndimage.generate_binary_structure(3, 1),
                                       iterations=BODY_DILATION)
    return mask


def stored_probability(prob: np.ndarray, prob_dtype: str) -> np.ndarray:
    """The probability map as ``sapkit predict`` stores it: float32, or 16 bits (``round(p × 65535) / 65535``)."""
    prob = np.asarray(prob, dtype=np.float32)
    if prob_dtype == "float32":
        return prob
    quantised = np.round(np.clip(prob, 0.0, 1.0) * float(_LEVELS)).astype(np.uint16)
    return (quantised.astype(np.float32) * np.float32(1.0 / _LEVELS)).astype(np.float32)


def label_map(prob: np.ndarray, *, threshold: float, spacing_mm: Any, min_volume_ml: float = 0.0,
              connectivity: int = 26) -> np.ndarray:
    """Lesion mask (X, Y, Z) uint8: ``prob >= threshold`` in float32, lesions below ``min_volume_ml`` dropped."""
    mask = np.asarray(prob, dtype=np.float32) >= np.float32(threshold)
    if min_volume_ml > 0 and mask.any():
        rank = {6: 1, 18: 2, 26: 3}[int(connectivity)]
        labels, _ = ndimage.label(mask, structure=ndimage.generate_binary_structure(3, rank))
        voxel_ml = float(np.prod(np.asarray(spacing_mm, dtype=np.float64))) / 1000.0
        keep = np.bincount(labels.ravel()) * voxel_ml >= min_volume_ml
        keep[0] = False
        mask = keep[labels]
    return mask.astype(np.uint8)


class SapkitPostprocessd:
    """Dictionary transform: ``data[prob_key]`` (1, X, Y, Z) lesion probability → body-masked map, and the label map.

    Parameters
    ----------
    keys : str
        Key of the probability map (replaced by the label map when ``threshold`` is given).
    image_key : str
        Key of the scaled input image (2, X, Y, Z); channel 0 (T1) outlines the body.
    prob_key : str
        Key that receives the body-masked probability map.
    threshold : float or None
        The tuned threshold; None writes no label map (``keys`` keeps the probability map).
    body : bool
        Apply the body mask (``infer.skip_background`` of the exported run).
    prob_dtype : {"float16", "float32"}
        How ``sapkit predict`` stored the map it thresholded (``infer.prob_dtype``).
    min_volume_ml : float
        Lesions below this volume are dropped (``sapkit predict --min-volume-ml``).
    connectivity : {6, 18, 26}
        Neighbourhood of a lesion (``eval.connectivity``).
    """

    def __init__(self, keys: str = "pred", image_key: str = "image", prob_key: str = "prob", *,
                 threshold: float | None = None, body: bool = True, prob_dtype: str = "float16",
                 min_volume_ml: float = 0.0, connectivity: int = 26) -> None:
        self.keys, self.image_key, self.prob_key = keys, image_key, prob_key
        self.threshold, self.body, self.prob_dtype = threshold, body, prob_dtype
        self.min_volume_ml, self.connectivity = float(min_volume_ml), int(connectivity)

    def __call__(self, data: Mapping[str, Any]) -> dict[str, Any]:
        d = dict(data)
        pred = d[self.keys]
        prob = np.asarray(pred.detach().cpu().numpy() if isinstance(pred, torch.Tensor) else pred, dtype=np.float32)[0]
        if self.body:
            image = d[self.image_key]
            t1 = np.asarray(image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else image)[0]
            prob = np.where(body_mask(t1), prob, np.float32(0.0)).astype(np.float32)
        d[self.prob_key] = _like(pred, prob[None])
        if self.threshold is not None:
            affine = np.asarray(getattr(pred, "affine", np.eye(4)), dtype=np.float64)
            spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
            labels = label_map(stored_probability(prob, self.prob_dtype), threshold=self.threshold,
                               spacing_mm=spacing, min_volume_ml=self.min_volume_ml, connectivity=self.connectivity)
            d[self.keys] = _like(pred, labels[None])
        return d


def _like(reference: Any, array: np.ndarray) -> Any:
    """``array`` as a tensor carrying ``reference``'s metadata (affine, file name) when it has any."""
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    meta = getattr(reference, "meta", None)
    if meta is None:
        return tensor
    from monai.data import MetaTensor

    return MetaTensor(tensor, affine=reference.affine.clone(), meta=copy.deepcopy(dict(meta)))
