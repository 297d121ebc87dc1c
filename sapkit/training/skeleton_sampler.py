"""Random ROI patches for skeleton (class-balanced) and SSL (random body) training.

Lesion patches come from :mod:`sapkit.training.lesion_sampler` (instance-balanced). Both follow the sampler
contract of :func:`sapkit.training.engine.fit`: ``len(sampler)`` and ``sampler.epoch_samples(epoch)``
returning this process's samples, deterministic in (seed, epoch, rank), without augmentation.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import numpy.typing as npt

from sapkit.errors import ConfigError, SapkitError

__all__ = ["PatchSampler"]

_STREAM_PATCH = 201


class PatchSampler:
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
        Sample ``i`` of ``epoch`` is drawn from ``default_rng([seed, 201, epoch, i])``; rank ``r``
        serves samples ``r, r + world_size, …`` (padded so every rank has the same count).

    Raises
    ------
    ConfigError
        ``roi`` is not 3 positive voxel counts.
    SapkitError
        No cases, or a case lacks the ``label`` array.

    Notes
    -----
    Volumes smaller than ``roi`` are zero-padded at their far end. Each patch is a view into the
    (padded) case array, shape ``(C, *roi)`` float32, with the label patch ``roi`` (or None).
    """

    def __init__(self, cases: Sequence[Any], *, roi: Sequence[int], samples_per_volume: int, label: str | None,
                 seed: int, rank: int = 0, world_size: int = 1) -> None:
        if len(roi) != 3 or min(roi) < 1:
            raise ConfigError(f"roi must be 3 positive voxel counts, got {roi!r}")
        if not cases:
            raise SapkitError("no training cases: check splits.json healthy.train and the manifest")
        self.roi = tuple(int(r) for r in roi)
        self.samples_per_volume = int(samples_per_volume)
        self.label, self.seed, self.rank, self.world_size = label, int(seed), int(rank), int(world_size)
        self._images: list[npt.NDArray[np.float32]] = []
        self._labels: list[npt.NDArray | None] = []
        self._centres: list[dict[int, npt.NDArray[np.int64]]] = []
        for case in cases:
            image = np.asarray(case.image, dtype=np.float32)
            lab = None if label is None else getattr(case, label)
            if label is not None and lab is None:
                raise SapkitError(f"case {case.scan_id} has no {label} label; training needs labelled scans")
            pad = [(0, 0)] + [(0, max(r - n, 0)) for r, n in zip(self.roi, image.shape[1:])]
            if any(p[1] for p in pad):
                image = np.pad(image, pad)
                lab = np.pad(lab, pad[1:]) if lab is not None else None
            self._images.append(image)
            self._labels.append(lab)
            body = np.flatnonzero(image.mean(0) > 0.05)
            centres = {0: body if body.size else np.arange(image[0].size)}
            if lab is not None:
                for c in np.unique(lab):
                    if c != 0:
                        centres[int(c)] = np.flatnonzero(lab == c)
            self._centres.append(centres)
        self._total = len(self._images) * self.samples_per_volume
        self._per_rank = -(-self._total // self.world_size)

    def __len__(self) -> int:
        """Samples per epoch on this rank."""
        return self._per_rank

    def __repr__(self) -> str:
        return (f"PatchSampler(cases={len(self._images)}, roi={self.roi}, samples_per_volume="
                f"{self.samples_per_volume}, label={self.label!r}, rank={self.rank}/{self.world_size})")

    def epoch_samples(self, epoch: int) -> list[tuple[npt.NDArray[np.float32], npt.NDArray | None]]:
        """This rank's patches of ``epoch`` (deterministic in seed, epoch, rank)."""
        order = np.random.default_rng([self.seed, _STREAM_PATCH, int(epoch)]).permutation(self._total)
        padded = np.concatenate([order, order[: self.world_size * self._per_rank - self._total]])
        return [self._sample(epoch, int(i)) for i in padded[self.rank::self.world_size]]

    def _sample(self, epoch: int, i: int) -> tuple[npt.NDArray[np.float32], npt.NDArray | None]:
        rng = np.random.default_rng([self.seed, _STREAM_PATCH, int(epoch), i])
        k = i // self.samples_per_volume
        image, lab, centres = self._images[k], self._labels[k], self._centres[k]
        classes = sorted(centres)
        cls = classes[int(rng.integers(0, len(classes)))]
        flat = centres[cls][int(rng.integers(0, centres[cls].size))]
        centre = np.unravel_index(flat, image.shape[1:])
        start = [int(min(max(c - r // 2, 0), n - r)) for c, r, n in zip(centre, self.roi, image.shape[1:])]
        sl = tuple(slice(s, s + r) for s, r in zip(start, self.roi))
        return image[(slice(None), *sl)], (lab[sl] if lab is not None else None)
