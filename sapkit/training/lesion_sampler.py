"""Patch sampling for lesion training: instance-balanced (SPEC §4) and plain pos/neg.

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

The plain :class:`PosNegSampler` (MONAI ``RandCropByPosNegLabel``-like: centre the crop on a
random lesion voxel with probability ``pos / (pos + neg)``, else on a random background voxel)
is here for comparison.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import cc3d
import numpy as np
import numpy.typing as npt

from sapkit.errors import ConfigError, SapkitError

__all__ = [
    "PatchBox",
    "InstanceBalancedSampler",
    "PosNegSampler",
    "build_sampler",
    "window_size",
    "positive_boxes",
    "negative_windows",
]

_CONNECTIVITIES = (6, 18, 26)
Sample = tuple[npt.NDArray[np.float32], npt.NDArray[np.uint8]]


class _CaseLike(Protocol):
    scan_id: str
    image: npt.NDArray[np.float32]
    lesion: npt.NDArray[np.uint8] | None


@dataclass(frozen=True)
class PatchBox:
    """An axis-aligned box in one case's voxel grid.

    Attributes
    ----------
    case_index : int
        Position of the case in the sampler's case list.
    start, stop : tuple of 3 int
        Voxel bounds ``[start, stop)`` per axis (X, Y, Z) of the (possibly padded) case grid.
    component : int
        Lesion component id (1..n within the case, cc3d labelling) for a positive box; 0 for a
        negative window.
    """

    case_index: int
    start: tuple[int, int, int]
    stop: tuple[int, int, int]
    component: int

    @property
    def size(self) -> tuple[int, int, int]:
        """Box size in voxels per axis."""
        return tuple(b - a for a, b in zip(self.start, self.stop))  # type: ignore[return-value]

    @property
    def is_positive(self) -> bool:
        """True for a lesion box, False for a negative window."""
        return self.component > 0

    def slices(self) -> tuple[slice, slice, slice]:
        """Spatial slices of the box."""
        return tuple(slice(a, b) for a, b in zip(self.start, self.stop))  # type: ignore[return-value]


def window_size(roi: Sequence[int]) -> tuple[int, int, int]:
    """Box size of IB sampling: ``ceil(4/3 × roi)`` per axis (128 for a 96 ROI).

    Examples
    --------
    >>> window_size((96, 96, 96))
    (128, 128, 128)
    >>> window_size((64, 64, 32))
    (86, 86, 43)
    """
    roi = _check_roi(roi)
    return tuple(int(math.ceil(4 * r / 3 - 1e-9)) for r in roi)  # type: ignore[return-value]


def positive_boxes(
    lesion: npt.NDArray, *, roi: Sequence[int], margin_voxels: int = 10, connectivity: int = 26,
    case_index: int = 0,
) -> list[PatchBox]:
    """One box per connected lesion component.

    Parameters
    ----------
    lesion : (X, Y, Z) integer array
        Lesion mask (any value > 0 is lesion). Its shape must be ≥ ``window_size(roi)`` per axis
        (the samplers pad smaller volumes first).
    roi : 3 ints
        Training ROI in voxels.
    margin_voxels : int
        Margin added around each component's bounding box, in voxels (paper: 10).
    connectivity : {6, 18, 26}
        Voxel connectivity of lesion components (default 26: face, edge and corner neighbours).
    case_index : int
        Stored in the returned boxes.

    Returns
    -------
    list of PatchBox
        Bounding box + margin, grown symmetrically to at least ``window_size(roi)`` per axis,
        then shifted (never shrunk below the window) to lie inside the volume. Ordered by
        component id.

    Examples
    --------
    >>> m = np.zeros((50, 50, 50), np.uint8); m[20, 20, 20] = 1; m[21, 21, 21] = 1
    >>> [b.size for b in positive_boxes(m, roi=(24, 24, 24))]  # one 26-connected lesion
    [(32, 32, 32)]
    >>> len(positive_boxes(m, roi=(24, 24, 24), connectivity=6))
    2
    """
    roi = _check_roi(roi)
    _check_connectivity(connectivity)
    if margin_voxels < 0:
        raise ConfigError(f"margin_voxels must be ≥ 0 voxels, got {margin_voxels}; the paper uses 10")
    shape = lesion.shape
    window = window_size(roi)
    if any(s < w for s, w in zip(shape, window)):
        raise SapkitError(f"volume shape {shape} is smaller than the IB window {window}; pad it first")
    labels, n = cc3d.connected_components(np.asarray(lesion) > 0, connectivity=connectivity, return_N=True)
    if n == 0:
        return []
    stats = cc3d.statistics(labels)
    boxes = []
    for comp in range(1, n + 1):
        bbox = stats["bounding_boxes"][comp]
        start, stop = [], []
        for ax in range(3):
            lo = bbox[ax].start - margin_voxels
            hi = bbox[ax].stop + margin_voxels
            if hi - lo < window[ax]:
                grow = window[ax] - (hi - lo)
                lo -= grow // 2
                hi += grow - grow // 2
            lo, hi = _fit_inside(lo, hi, shape[ax])
            start.append(lo)
            stop.append(hi)
        boxes.append(PatchBox(case_index, tuple(start), tuple(stop), comp))  # type: ignore[arg-type]
    return boxes


def negative_windows(lesion: npt.NDArray, *, roi: Sequence[int], case_index: int = 0) -> list[PatchBox]:
    """All lesion-free windows of size ``window_size(roi)`` at stride half the window.

    Window starts along an axis of length ``n`` are ``0, s, 2s, …`` plus ``n − w`` (so the end
    of the volume is covered), with ``w`` the window and ``s = w // 2``.

    Parameters
    ----------
    lesion : (X, Y, Z) integer array
        Lesion mask, shape ≥ the window per axis.
    roi : 3 ints
        Training ROI in voxels.

    Returns
    -------
    list of PatchBox
        Windows without a single lesion voxel (``component = 0``), in C order of their starts.
    """
    roi = _check_roi(roi)
    window = window_size(roi)
    shape = lesion.shape
    if any(s < w for s, w in zip(shape, window)):
        raise SapkitError(f"volume shape {shape} is smaller than the IB window {window}; pad it first")
    starts = [_grid_starts(n, w, max(w // 2, 1)) for n, w in zip(shape, window)]
    fg = np.asarray(lesion) > 0
    # Test slabs first: a lesion-free X slab clears all its windows at once (most of a body).
    out = []
    for x in starts[0]:
        slab_x = fg[x:x + window[0]]
        if not slab_x.any():
            out.extend(PatchBox(case_index, (x, y, z), (x + window[0], y + window[1], z + window[2]), 0)
                       for y in starts[1] for z in starts[2])
            continue
        for y in starts[1]:
            slab_y = slab_x[:, y:y + window[1]]
            has_z = slab_y.any(axis=(0, 1))
            cum = np.concatenate([[0], np.cumsum(has_z)])
            for z in starts[2]:
                if cum[z + window[2]] - cum[z] == 0:
                    out.append(PatchBox(case_index, (x, y, z), (x + window[0], y + window[1], z + window[2]), 0))
    return out


class InstanceBalancedSampler:
    """Instance-balanced patch sampler over in-memory cases (SPEC §4).

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
        self.roi = _check_roi(roi)
        if not (negative_ratio >= 0 and math.isfinite(negative_ratio)):
            raise ConfigError(f"negative_ratio must be a finite number ≥ 0, got {negative_ratio}; the paper uses 1.0")
        _check_connectivity(connectivity)
        _check_rank(rank, world_size)
        self.negative_ratio = float(negative_ratio)
        self.margin_voxels = int(margin_voxels)
        self.connectivity = int(connectivity)
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.window = window_size(self.roi)
        self._images, self._labels, self.scan_ids = _prepare_cases(cases, self.window)
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
        n_neg = int(round(self.negative_ratio * n_pos))
        self._per_rank = -(-(n_pos + n_neg) // self.world_size)  # ceil
        if self.world_size * self._per_rank > n_pos and not self.negatives:
            raise SapkitError(
                f"no lesion-free {self.window} window exists in any case, but negative_ratio="
                f"{self.negative_ratio} (or DDP padding) asks for negatives; set lesion.negative_ratio=0, "
                "use a smaller roi or add cases"
            )

    def __len__(self) -> int:
        """Samples per epoch on this rank (the same for every epoch and rank)."""
        return self._per_rank

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
        rng = np.random.default_rng([self.seed, int(epoch)])
        n_pos = len(self.positives)
        pos_order = rng.permutation(n_pos)
        n_neg_total = self.world_size * self._per_rank - n_pos
        replace = n_neg_total > len(self.negatives)
        neg_order = rng.choice(len(self.negatives), size=n_neg_total, replace=replace) if n_neg_total else []
        mine = [self.positives[j] for j in pos_order[self.rank::self.world_size]]
        # Deal negatives so that ranks with one positive fewer get one negative more.
        pos_counts = [len(range(r, n_pos, self.world_size)) for r in range(self.world_size)]
        neg_counts = [self._per_rank - c for c in pos_counts]
        offset = sum(neg_counts[:self.rank])
        mine += [self.negatives[j] for j in neg_order[offset:offset + neg_counts[self.rank]]]
        order = np.random.default_rng([self.seed, int(epoch), self.rank]).permutation(len(mine))
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
        return [self._crop(box, epoch, i) for i, box in enumerate(self.epoch_plan(epoch))]

    def _crop(self, box: PatchBox, epoch: int, index: int) -> Sample:
        rng = np.random.default_rng([self.seed, int(epoch), self.rank, index])
        start = [a + int(rng.integers(0, s - r + 1)) for a, s, r in zip(box.start, box.size, self.roi)]
        sl = tuple(slice(a, a + r) for a, r in zip(start, self.roi))
        return _readonly(self._images[box.case_index][(slice(None), *sl)]), _readonly(self._labels[box.case_index][sl])


class PosNegSampler:
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
        self.roi = _check_roi(roi)
        if pos < 0 or neg < 0 or pos + neg <= 0:
            raise ConfigError(f"pos and neg must be ≥ 0 with pos + neg > 0, got pos={pos}, neg={neg}")
        if samples_per_case < 1:
            raise ConfigError(f"samples_per_case must be ≥ 1, got {samples_per_case}")
        _check_rank(rank, world_size)
        self.pos_fraction = float(pos) / float(pos + neg)
        self.samples_per_case = int(samples_per_case)
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        self._images, self._labels, self.scan_ids = _prepare_cases(cases, self.roi)
        self._fg = [np.flatnonzero(label) for label in self._labels]
        n_total = len(self._labels) * self.samples_per_case
        self._per_rank = -(-n_total // self.world_size)

    def __len__(self) -> int:
        """Samples per epoch on this rank."""
        return self._per_rank

    def __repr__(self) -> str:
        return (f"PosNegSampler(cases={len(self._labels)}, roi={self.roi}, pos_fraction={self.pos_fraction:.3g}, "
                f"samples_per_case={self.samples_per_case}, rank={self.rank}/{self.world_size})")

    def epoch_samples(self, epoch: int) -> list[Sample]:
        """Crops of this rank for ``epoch``: list of (image (C, *roi) float32, label (*roi) uint8) views."""
        n_total = len(self._labels) * self.samples_per_case
        idx = [(self.rank + k * self.world_size) % n_total for k in range(self._per_rank)]
        return [self._sample(epoch, i) for i in idx]

    def _sample(self, epoch: int, i: int) -> Sample:
        rng = np.random.default_rng([self.seed, int(epoch), i])
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
        start = [min(max(int(c) - r // 2, 0), n - r) for c, r, n in zip(centre, self.roi, label.shape)]
        sl = tuple(slice(a, a + r) for a, r in zip(start, self.roi))
        return _readonly(self._images[case][(slice(None), *sl)]), _readonly(label[sl])


def build_sampler(
    cases: Sequence[_CaseLike], lesion_config: Any, *, seed: int = 42, rank: int = 0, world_size: int = 1,
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


# ----------------------------------------------------------------------------------------------
def _check_roi(roi: Sequence[int]) -> tuple[int, int, int]:
    try:
        out = tuple(int(r) for r in roi)
    except (TypeError, ValueError):
        raise ConfigError(f"roi must be 3 positive integers (voxels), got {roi!r}") from None
    if len(out) != 3 or any(r < 1 for r in out) or any(float(a) != float(b) for a, b in zip(out, roi)):
        raise ConfigError(f"roi must be 3 positive integers (voxels), got {roi!r}; e.g. [96, 96, 96]")
    return out  # type: ignore[return-value]


def _check_connectivity(connectivity: int) -> None:
    if connectivity not in _CONNECTIVITIES:
        raise ConfigError(
            f"connectivity must be 6, 18 or 26 (3D voxel neighbourhood), got {connectivity!r}; the kit's default is 26"
        )


def _check_rank(rank: int, world_size: int) -> None:
    if world_size < 1 or not 0 <= rank < world_size:
        raise ConfigError(f"need 0 ≤ rank < world_size with world_size ≥ 1, got rank={rank}, world_size={world_size}")


def _fit_inside(lo: int, hi: int, n: int) -> tuple[int, int]:
    """Shift [lo, hi) inside [0, n) keeping its size; clip only if it is larger than n."""
    if hi - lo >= n:
        return 0, n
    if lo < 0:
        lo, hi = 0, hi - lo
    if hi > n:
        lo, hi = lo - (hi - n), n
    return lo, hi


def _grid_starts(n: int, w: int, s: int) -> list[int]:
    starts = list(range(0, n - w + 1, s))
    if starts[-1] != n - w:
        starts.append(n - w)
    return starts


def _readonly(a: npt.NDArray) -> npt.NDArray:
    v = a.view()
    v.flags.writeable = False
    return v


def _prepare_cases(
    cases: Sequence[_CaseLike], min_shape: Sequence[int],
) -> tuple[list[npt.NDArray[np.float32]], list[npt.NDArray], list[str]]:
    images, labels, ids, problems = [], [], [], []
    for k, case in enumerate(cases):
        scan_id = str(getattr(case, "scan_id", k))
        image, lesion = getattr(case, "image", None), getattr(case, "lesion", None)
        if lesion is None:
            problems.append(f"{scan_id}: no lesion mask (lesion is None)")
            continue
        if not isinstance(image, np.ndarray) or image.ndim != 4 or image.shape[1:] != lesion.shape:
            problems.append(f"{scan_id}: image shape {getattr(image, 'shape', None)} does not match "
                            f"(C, *{lesion.shape}) of the lesion mask")
            continue
        if image.dtype != np.float32:
            image = image.astype(np.float32)
        pad = [(0, max(0, m - n)) for n, m in zip(lesion.shape, min_shape)]
        if any(p[1] for p in pad):
            image = np.pad(image, [(0, 0), *pad])
            lesion = np.pad(lesion, pad)
        images.append(image)
        labels.append(lesion)
        ids.append(scan_id)
    if problems:
        raise SapkitError(
            "cannot sample patches from these cases: " + "; ".join(problems)
            + ". Load patients with lesion labels (sapkit.data.cases.load_cases(..., cohort='patient'))"
        )
    if not labels:
        raise SapkitError("no cases given to the sampler; pass at least one patient case")
    return images, labels, ids
