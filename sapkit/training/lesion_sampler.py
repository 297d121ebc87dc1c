"""Patch sampling for lesion training: instance-balanced (docs/method.md §4.4) and plain pos/neg.

Instance-balanced sampling (IB) gives every connected lesion component the same chance to be
seen, however small: a patient with 40 lesions and one with 1 lesion both contribute one patch
per lesion, and a 0.1 mL lesion counts as much as a 20 mL one. Random lesion-free windows are
added as negatives. Everything is served from the in-memory case arrays: a patch is a *view*
into ``Case.image`` / ``Case.lesion`` (no pre-cut files, no copies).

Per epoch ``e`` (``seed`` = the run seed):

1. every positive box (one per lesion component) is used once;
2. ``round(negative_ratio × n_positives)`` negative windows are drawn **fresh** from
   ``np.random.default_rng([seed, e])`` — a resumed run (new sampler, same seed) draws exactly
   the same negatives for epoch ``e`` as an uninterrupted one;
3. each box is cropped to the ROI at a random offset drawn from
   ``np.random.default_rng([seed, e, rank, i])`` for the ``i``-th sample of the rank.

Under DDP (``world_size > 1``) the positives are permuted with the epoch generator and dealt
round-robin to the ranks (no overlap, all covered); negatives are drawn once for all ranks and
dealt the same way, topped up so that every rank gets the same number of samples (DDP hangs if
ranks run different numbers of steps).

The boxes come from :mod:`sapkit.training.lesion_boxes`; case padding, read-only crops, random
streams and DDP placement from :class:`~sapkit.training.patch_sampler.SamplerBase`.

The plain :class:`PosNegSampler` (MONAI ``RandCropByPosNegLabel``-like: centre the crop on a
random lesion voxel with probability ``pos / (pos + neg)``, else on a random background voxel)
is here for comparison.
"""

from __future__ import annotations

import math
from typing import Protocol, Sequence

import numpy as np
import numpy.typing as npt

from sapkit.config import LesionConfig
from sapkit.errors import ConfigError, SapkitError
from sapkit.training.lesion_boxes import PatchBox, negative_windows, positive_boxes, window_size
from sapkit.training.patch_sampler import Sample, SamplerBase, centred_start, deal
from sapkit.validation import check_connectivity

__all__ = ["InstanceBalancedSampler", "PosNegSampler", "build_sampler"]

_PATIENT_HINT = ("Load patients with lesion labels (sapkit.data.cases.load_cases(..., cohort='patient'))")


class _CaseLike(Protocol):
    scan_id: str
    image: npt.NDArray[np.float32]
    lesion: npt.NDArray[np.uint8] | None


class InstanceBalancedSampler(SamplerBase):
    """Instance-balanced patch sampler over in-memory cases (docs/method.md §4.4).

    Parameters
    ----------
    cases : sequence of Case
        Objects with ``scan_id``, ``image`` ((C, X, Y, Z) float32, scaled to [0, 1]) and
        ``lesion`` ((X, Y, Z) uint8, > 0 = lesion). A case with an empty lesion mask contributes
        negatives only. Volumes smaller than the window are zero-padded at the high end (a
        padded copy is kept for those cases only).
    roi : 3 ints
        Training ROI (crop size) in voxels, e.g. (96, 96, 96).
    negative_ratio : float
        Negatives per positive and epoch (paper: 1.0).
    margin_voxels : int
        Margin around each lesion bounding box, in voxels (paper: 10).
    connectivity : {6, 18, 26}
        Connectivity of lesion components (default 26; the paper does not state it).
    seed : int
        Run seed; epoch draws use ``default_rng([seed, epoch])``.
    rank, world_size : int
        DDP rank of this process and number of ranks.

    Attributes
    ----------
    positives : tuple of PatchBox
        All positive boxes (all ranks), ordered by case then component.
    negatives : tuple of PatchBox
        All candidate negative windows (all ranks).

    Raises
    ------
    ConfigError
        Invalid ROI, ratio, margin, connectivity or rank.
    SapkitError
        A case without a lesion mask, a wrong-shaped array, or no lesion in any case.

    Notes
    -----
    ``epoch_samples`` returns read-only views; stack or copy them before modifying.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> lesion = np.zeros((40, 40, 40), np.uint8); lesion[5:8, 5:8, 5:8] = 1; lesion[30, 30, 30] = 1
    >>> case = SimpleNamespace(scan_id="p1", image=np.zeros((2, 40, 40, 40), np.float32), lesion=lesion)
    >>> sampler = InstanceBalancedSampler([case], roi=(16, 16, 16), seed=0)
    >>> len(sampler.positives), len(sampler)
    (2, 4)
    >>> image, label = sampler.epoch_samples(0)[0]
    >>> image.shape, label.shape
    ((2, 16, 16, 16), (16, 16, 16))
    """

    def __init__(
        self, cases: Sequence[_CaseLike], *, roi: Sequence[int], negative_ratio: float = 1.0,
        margin_voxels: int = 10, connectivity: int = 26, seed: int = 42, rank: int = 0, world_size: int = 1,
    ) -> None:
        window = window_size(roi)
        if not (negative_ratio >= 0 and math.isfinite(negative_ratio)):
            raise ConfigError(f"negative_ratio must be a finite number ≥ 0, got {negative_ratio}; the paper uses 1.0")
        self.connectivity = check_connectivity(connectivity)
        super().__init__(cases, roi=roi, min_shape=window, label="lesion", seed=seed, rank=rank,
                         world_size=world_size, hint=_PATIENT_HINT)
        self.negative_ratio = float(negative_ratio)
        self.margin_voxels = int(margin_voxels)
        self.window = window
        positives: list[PatchBox] = []
        negatives: list[PatchBox] = []
        for i, label in enumerate(self._labels):
            positives += positive_boxes(label, roi=self.roi, margin_voxels=self.margin_voxels,
                                        connectivity=self.connectivity, case_index=i)
            negatives += negative_windows(label, roi=self.roi, case_index=i)
        if not positives:
            raise SapkitError(
                f"no lesion voxel in any of the {len(self._labels)} cases; instance-balanced sampling needs "
                "patients with lesion masks (check the lesion_label column of the manifest)"
            )
        self.positives: tuple[PatchBox, ...] = tuple(positives)
        self.negatives: tuple[PatchBox, ...] = tuple(negatives)
        n_pos = len(self.positives)
        self._set_epoch_length(n_pos + int(round(self.negative_ratio * n_pos)))
        if self.world_size * len(self) > n_pos and not self.negatives:
            raise SapkitError(
                f"no lesion-free {self.window} window exists in any case, but negative_ratio="
                f"{self.negative_ratio} (or DDP padding) asks for negatives; set lesion.negative_ratio=0, "
                "use a smaller roi or add cases"
            )

    def __repr__(self) -> str:
        return (f"InstanceBalancedSampler(cases={len(self._labels)}, positives={len(self.positives)}, "
                f"negative_windows={len(self.negatives)}, roi={self.roi}, window={self.window}, "
                f"negative_ratio={self.negative_ratio}, connectivity={self.connectivity}, "
                f"rank={self.rank}/{self.world_size}, samples_per_epoch={len(self)})")

    def epoch_plan(self, epoch: int) -> list[PatchBox]:
        """The boxes of this rank for ``epoch``, in the order ``epoch_samples`` serves them.

        Deterministic in (seed, epoch, rank, world_size): positives are permuted by the epoch
        generator and dealt round-robin; ``world_size × len(self) − n_positives`` negatives are
        drawn without replacement (with replacement only if fewer windows exist) and dealt the
        same way; the rank's list is then shuffled.
        """
        rng = self._rng(epoch)
        n_pos = len(self.positives)
        pos_order = rng.permutation(n_pos)
        n_neg_total = self.world_size * len(self) - n_pos
        replace = n_neg_total > len(self.negatives)
        neg_order = rng.choice(len(self.negatives), size=n_neg_total, replace=replace) if n_neg_total else []
        mine = [self.positives[j] for j in pos_order[self.rank::self.world_size]]
        # Deal negatives so that ranks with one positive fewer get one negative more.
        pos_counts = [len(range(r, n_pos, self.world_size)) for r in range(self.world_size)]
        neg_counts = [len(self) - c for c in pos_counts]
        offset = sum(neg_counts[:self.rank])
        mine += [self.negatives[j] for j in neg_order[offset:offset + neg_counts[self.rank]]]
        order = self._rng(epoch, self.rank).permutation(len(mine))
        return [mine[j] for j in order]

    def epoch_samples(self, epoch: int) -> list[Sample]:
        """Random ROI crops of this rank's boxes for ``epoch``.

        Returns
        -------
        list of (image, label)
            ``image`` (C, *roi) float32 and ``label`` (*roi) uint8 (1 = lesion), read-only views
            into the case arrays. The crop offset of sample ``i`` is drawn from
            ``default_rng([seed, epoch, rank, i])``.
        """
        return [self._crop_box(box, epoch, i) for i, box in enumerate(self.epoch_plan(epoch))]

    def _crop_box(self, box: PatchBox, epoch: int, index: int) -> Sample:
        rng = self._rng(epoch, self.rank, index)
        start = [a + int(rng.integers(0, s - r + 1)) for a, s, r in zip(box.start, box.size, self.roi)]
        return self._crop(box.case_index, start)


class PosNegSampler(SamplerBase):
    """Plain pos/neg crop sampler (MONAI ``RandCropByPosNegLabel``-like), for comparison.

    Each epoch draws ``samples_per_case`` crops per case; a crop is centred on a random lesion
    voxel with probability ``pos / (pos + neg)`` (if the case has any), else on a random
    background voxel, and shifted to lie inside the volume. Large lesions get proportionally
    more positive crops than small ones — the imbalance IB sampling removes.

    Parameters
    ----------
    cases : sequence of Case
        As for :class:`InstanceBalancedSampler`; volumes smaller than the ROI are zero-padded.
    roi : 3 ints
        Crop size in voxels.
    pos, neg : float
        Relative weights of lesion- and background-centred crops (MONAI's defaults 1, 1).
    samples_per_case : int
        Crops per case and epoch.
    seed, rank, world_size : int
        As for :class:`InstanceBalancedSampler`; crop ``i`` of the epoch's global list uses
        ``default_rng([seed, epoch, i])`` and ranks take every ``world_size``-th crop.
    """

    def __init__(
        self, cases: Sequence[_CaseLike], *, roi: Sequence[int], pos: float = 1.0, neg: float = 1.0,
        samples_per_case: int = 2, seed: int = 42, rank: int = 0, world_size: int = 1,
    ) -> None:
        if pos < 0 or neg < 0 or pos + neg <= 0:
            raise ConfigError(f"pos and neg must be ≥ 0 with pos + neg > 0, got pos={pos}, neg={neg}")
        if samples_per_case < 1:
            raise ConfigError(f"samples_per_case must be ≥ 1, got {samples_per_case}")
        super().__init__(cases, roi=roi, min_shape=roi, label="lesion", seed=seed, rank=rank, world_size=world_size,
                         hint=_PATIENT_HINT)
        self.pos_fraction = float(pos) / float(pos + neg)
        self.samples_per_case = int(samples_per_case)
        self._fg = [np.flatnonzero(label) for label in self._labels]
        self._set_epoch_length(len(self._labels) * self.samples_per_case)

    def __repr__(self) -> str:
        return (f"PosNegSampler(cases={len(self._labels)}, roi={self.roi}, pos_fraction={self.pos_fraction:.3g}, "
                f"samples_per_case={self.samples_per_case}, rank={self.rank}/{self.world_size})")

    def epoch_samples(self, epoch: int) -> list[Sample]:
        """Crops of this rank for ``epoch``: list of (image (C, *roi) float32, label (*roi) uint8) views."""
        idx = deal(np.arange(self._total), rank=self.rank, world_size=self.world_size, count=len(self))
        return [self._sample(epoch, i) for i in idx]

    def _sample(self, epoch: int, i: int) -> Sample:
        rng = self._rng(epoch, i)
        case = i // self.samples_per_case
        label = self._labels[case]
        fg = self._fg[case]
        if fg.size and rng.random() < self.pos_fraction:
            centre = np.unravel_index(int(fg[rng.integers(fg.size)]), label.shape)
        else:
            centre = None
            for _ in range(1000):  # background dominates; rejection sampling avoids an index list
                cand = tuple(int(rng.integers(n)) for n in label.shape)
                if label[cand] == 0:
                    centre = cand
                    break
            if centre is None:
                centre = tuple(n // 2 for n in label.shape)
        return self._crop(case, centred_start(centre, self.roi, label.shape))


def build_sampler(
    cases: Sequence[_CaseLike], lesion_config: LesionConfig, *, seed: int = 42, rank: int = 0, world_size: int = 1,
) -> InstanceBalancedSampler | PosNegSampler:
    """The sampler named by ``lesion_config.sampler`` (``instance_balanced`` or ``posneg``).

    Parameters
    ----------
    cases : sequence of Case
        Training cases with lesion masks.
    lesion_config : sapkit.config.LesionConfig
        Uses ``sampler``, ``roi``, ``negative_ratio``, ``margin_voxels``, ``connectivity``.
        For ``posneg``, ``samples_per_case`` is ``2 × (1 + negative_ratio)`` so that the epoch
        length is comparable, and pos:neg = 1:negative_ratio.
    seed, rank, world_size : int
        Run seed and DDP placement.
    """
    kind = lesion_config.sampler
    if kind == "instance_balanced":
        return InstanceBalancedSampler(
            cases, roi=lesion_config.roi, negative_ratio=lesion_config.negative_ratio,
            margin_voxels=lesion_config.margin_voxels, connectivity=lesion_config.connectivity,
            seed=seed, rank=rank, world_size=world_size,
        )
    if kind == "posneg":
        ratio = float(lesion_config.negative_ratio)
        return PosNegSampler(
            cases, roi=lesion_config.roi, pos=1.0, neg=ratio,
            samples_per_case=max(1, int(round(2 * (1 + ratio)))), seed=seed, rank=rank, world_size=world_size,
        )
    raise ConfigError(f"lesion.sampler must be 'instance_balanced' or 'posneg', got {kind!r}")
