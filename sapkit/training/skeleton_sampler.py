"""Random ROI patches for skeleton (class-balanced) and SSL (random body) training.

Lesion patches come from :mod:`sapkit.training.lesion_sampler` (instance-balanced). Both follow the sampler
contract of :func:`sapkit.training.engine.fit` and share :class:`~sapkit.training.patch_sampler.SamplerBase`
(case padding, read-only crops, random streams, DDP dealing).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import numpy.typing as npt

from sapkit.errors import ConfigError
from sapkit.training.patch_sampler import Sample, SamplerBase, centred_start, deal

__all__ = ["PatchSampler"]

_STREAM_PATCH = 201
_BODY_THRESHOLD = 0.05  # mean scaled intensity above which a voxel is body (background patch centres)


class PatchSampler(SamplerBase):
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
        The epoch's samples are permuted by ``default_rng([seed, 201, epoch])``; sample ``i`` is
        drawn from ``default_rng([seed, 201, epoch, i])``; rank ``r`` serves permuted samples
        ``r, r + world_size, …`` (topped up from the start so every rank has the same count).

    Raises
    ------
    ConfigError
        ``roi`` is not 3 positive voxel counts, ``samples_per_volume`` < 1, or a bad rank.
    SapkitError
        No cases, or a case lacks the ``label`` array.

    Notes
    -----
    Volumes smaller than ``roi`` are zero-padded at their far end. Each patch is a read-only view
    into the (padded) case array, shape ``(C, *roi)`` float32, with the label patch ``roi`` (or None).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> skeleton = np.zeros((20, 20, 20), np.int16); skeleton[5:8, 5:8, 5:8] = 3
    >>> case = SimpleNamespace(scan_id="h1", image=np.full((2, 20, 20, 20), 0.5, np.float32), skeleton=skeleton)
    >>> sampler = PatchSampler([case], roi=(8, 8, 8), samples_per_volume=4, label="skeleton", seed=0)
    >>> len(sampler), [(image.shape, patch.shape) for image, patch in sampler.epoch_samples(0)][0]
    (4, ((2, 8, 8, 8), (8, 8, 8)))
    """

    def __init__(self, cases: Sequence[Any], *, roi: Sequence[int], samples_per_volume: int, label: str | None,
                 seed: int, rank: int = 0, world_size: int = 1) -> None:
        super().__init__(cases, roi=roi, min_shape=roi, label=label, seed=seed, rank=rank, world_size=world_size,
                         hint="check splits.json healthy.train and the manifest; skeleton training needs labelled "
                              "healthy scans (notebook 01)")
        if samples_per_volume < 1:
            raise ConfigError(f"samples_per_volume must be ≥ 1, got {samples_per_volume}")
        self.samples_per_volume = int(samples_per_volume)
        self.label = label
        self._centres: list[dict[int, npt.NDArray[np.int64]]] = []
        for image, lab in zip(self._images, self._labels):
            body = np.flatnonzero(image.mean(0) > _BODY_THRESHOLD)
            centres = {0: body if body.size else np.arange(image[0].size)}
            if lab is not None:
                for c in np.unique(lab):
                    if c != 0:
                        centres[int(c)] = np.flatnonzero(lab == c)
            self._centres.append(centres)
        self._set_epoch_length(len(self._images) * self.samples_per_volume)

    def __repr__(self) -> str:
        return (f"PatchSampler(cases={len(self._images)}, roi={self.roi}, samples_per_volume="
                f"{self.samples_per_volume}, label={self.label!r}, rank={self.rank}/{self.world_size})")

    def epoch_samples(self, epoch: int) -> list[Sample]:
        """This rank's patches of ``epoch`` (deterministic in seed, epoch, rank), read-only views."""
        order = self._rng(_STREAM_PATCH, epoch).permutation(self._total)
        return [self._sample(epoch, i) for i in deal(order, rank=self.rank, world_size=self.world_size,
                                                     count=len(self))]

    def _sample(self, epoch: int, i: int) -> Sample:
        rng = self._rng(_STREAM_PATCH, epoch, i)
        k = i // self.samples_per_volume
        centres = self._centres[k]
        classes = sorted(centres)
        cls = classes[int(rng.integers(0, len(classes)))]
        flat = centres[cls][int(rng.integers(0, centres[cls].size))]
        shape = self._images[k].shape[1:]
        return self._crop(k, centred_start(np.unravel_index(flat, shape), self.roi, shape))
