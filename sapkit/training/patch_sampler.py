"""What every patch sampler shares: case preparation, crop placement, DDP dealing, random streams.

A *sampler* serves training patches to :func:`sapkit.training.engine.fit`: ``len(sampler)`` patches
per epoch and rank, returned by ``sampler.epoch_samples(epoch)`` as ``(image, label)`` pairs,
deterministic in (seed, epoch, rank) and without augmentation. :class:`SamplerBase` holds the parts
the samplers have in common:

* **cases** — :func:`prepare_cases` checks each case, casts its image to float32 and zero-pads
  volumes smaller than the sampler's minimum shape at their far end (a padded copy is kept for
  those cases only);
* **crops** — a patch is a read-only *view* into the (padded) case arrays, never a copy:
  ``image`` (C, *roi) float32 and ``label`` (*roi) or None. A crop centred on a voxel is shifted
  to lie inside the volume (:func:`centred_start`); a box is shifted, never shrunk below its size
  (:func:`fit_inside`);
* **random streams** — every draw comes from ``np.random.default_rng([seed, *stream])``, a
  generator named by integers (a stream id, the epoch, the rank, the sample index), so a resumed
  run (a new sampler, the same seed) draws exactly what an uninterrupted one would;
* **DDP** — every rank serves ``ceil(total / world_size)`` samples; :func:`deal` gives rank ``r``
  items ``r, r + world_size, …`` of an order, wrapping around to top up the last ranks (DDP hangs
  when ranks run different numbers of steps).

Arrays are in file voxel order: images (C, X, Y, Z), labels and ROIs (X, Y, Z), sizes in voxels.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import numpy.typing as npt

from sapkit.errors import ConfigError, SapkitError
from sapkit.validation import check_roi

__all__ = ["Sample", "SamplerBase", "prepare_cases", "fit_inside", "centred_start", "deal", "check_rank"]

#: One training sample: image (C, *roi) float32 and label (*roi) integer array, or None (SSL).
Sample = tuple[npt.NDArray[np.float32], npt.NDArray | None]


class SamplerBase:
    """Prepared cases, crops, random streams and DDP placement of a patch sampler.

    Parameters
    ----------
    cases : sequence of Case
        Objects with ``scan_id``, ``image`` ((C, X, Y, Z), scaled to [0, 1]) and, when ``label``
        is given, that label attribute ((X, Y, Z) integer array).
    roi : 3 ints
        Patch size in voxels.
    min_shape : 3 ints
        Volumes smaller than this (voxels per axis) are zero-padded at their far end.
    label : str or None
        Case attribute holding the label map (``"skeleton"``, ``"lesion"``) or None (no labels).
    seed : int
        Run seed; the first entry of every random stream (:meth:`_rng`).
    rank, world_size : int
        DDP rank of this process and number of ranks.
    hint : str
        How to get usable cases, appended to the error when some are unusable.

    Raises
    ------
    ConfigError
        ``roi`` is not 3 positive voxel counts, or ``rank``/``world_size`` are inconsistent.
    SapkitError
        No cases, a case without the label, or an image whose shape does not match its label.

    Notes
    -----
    Subclasses compute their epoch length with :meth:`_set_epoch_length` and serve crops with
    :meth:`_crop`.
    """

    def __init__(self, cases: Sequence[Any], *, roi: Sequence[int], min_shape: Sequence[int], label: str | None,
                 seed: int, rank: int, world_size: int, hint: str) -> None:
        self.roi = check_roi(roi)
        check_rank(rank, world_size)
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        self._images, self._labels, self.scan_ids = prepare_cases(cases, min_shape, label=label, hint=hint)
        self._total = 0
        self._per_rank = 0

    def __len__(self) -> int:
        """Samples per epoch on this rank (the same for every epoch and rank)."""
        return self._per_rank

    def _set_epoch_length(self, total: int) -> None:
        """``total`` samples per epoch over all ranks; each rank serves ``ceil(total / world_size)``."""
        self._total = int(total)
        self._per_rank = -(-self._total // self.world_size)

    def _rng(self, *stream: int) -> np.random.Generator:
        """The generator ``default_rng([seed, *stream])`` (stream: integers such as epoch, rank, index)."""
        return np.random.default_rng([self.seed, *(int(s) for s in stream)])

    def _crop(self, case_index: int, start: Sequence[int]) -> Sample:
        """Read-only views of the ROI patch starting at ``start`` (voxels) in case ``case_index``."""
        sl = tuple(slice(int(a), int(a) + r) for a, r in zip(start, self.roi))
        label = self._labels[case_index]
        return (_readonly(self._images[case_index][(slice(None), *sl)]),
                None if label is None else _readonly(label[sl]))


def prepare_cases(
    cases: Sequence[Any], min_shape: Sequence[int], *, label: str | None, hint: str,
) -> tuple[list[npt.NDArray[np.float32]], list[npt.NDArray | None], list[str]]:
    """Check the cases, cast images to float32 and zero-pad volumes smaller than ``min_shape``.

    Parameters
    ----------
    cases : sequence of Case
        See :class:`SamplerBase`.
    min_shape : 3 ints
        Minimum spatial shape in voxels; smaller axes are padded with zeros at their far end.
    label : str or None
        Label attribute every case must have (None: labels are not used and returned as None).
    hint : str
        Appended to the error message when a case is unusable.

    Returns
    -------
    images : list of (C, X, Y, Z) float32
    labels : list of (X, Y, Z) arrays, or of None when ``label`` is None
    scan_ids : list of str

    Raises
    ------
    SapkitError
        No cases; or, listing every bad case at once, a missing label or an image that is not
        ``(C, *label.shape)``.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> case = SimpleNamespace(scan_id="a", image=np.ones((1, 2, 3, 4)), lesion=np.ones((2, 3, 4), np.uint8))
    >>> images, labels, ids = prepare_cases([case], (4, 4, 4), label="lesion", hint="")
    >>> images[0].shape, images[0].dtype, labels[0].shape, ids
    ((1, 4, 4, 4), dtype('float32'), (4, 4, 4), ['a'])
    """
    if not cases:
        raise SapkitError(f"no cases given to the sampler; {hint}")
    images, labels, ids, problems = [], [], [], []
    for k, case in enumerate(cases):
        scan_id = str(getattr(case, "scan_id", k))
        image = getattr(case, "image", None)
        lab = None if label is None else getattr(case, label, None)
        if label is not None and lab is None:
            problems.append(f"{scan_id}: no {label} label ({label} is None)")
            continue
        spatial = tuple(lab.shape) if lab is not None else tuple(getattr(image, "shape", ())[1:])
        if not isinstance(image, np.ndarray) or image.ndim != 4 or image.shape[1:] != spatial:
            problems.append(f"{scan_id}: image shape {getattr(image, 'shape', None)} is not (C, X, Y, Z)"
                            + (f" matching the {label} label {spatial}" if lab is not None else ""))
            continue
        if image.dtype != np.float32:
            image = image.astype(np.float32)
        pad = [(0, max(0, int(m) - n)) for n, m in zip(spatial, min_shape)]
        if any(p[1] for p in pad):
            image = np.pad(image, [(0, 0), *pad])
            lab = None if lab is None else np.pad(lab, pad)
        images.append(image)
        labels.append(lab)
        ids.append(scan_id)
    if problems:
        raise SapkitError("cannot sample patches from these cases: " + "; ".join(problems) + f". {hint}")
    return images, labels, ids


def fit_inside(lo: int, hi: int, n: int) -> tuple[int, int]:
    """Shift the interval ``[lo, hi)`` inside ``[0, n)`` keeping its size; clip only if it is longer than ``n``.

    Examples
    --------
    >>> fit_inside(-3, 5, 10), fit_inside(7, 13, 10), fit_inside(-1, 12, 10)
    ((0, 8), (4, 10), (0, 10))
    """
    if hi - lo >= n:
        return 0, n
    if lo < 0:
        lo, hi = 0, hi - lo
    if hi > n:
        lo, hi = lo - (hi - n), n
    return lo, hi


def centred_start(centre: Sequence[int], roi: Sequence[int], shape: Sequence[int]) -> list[int]:
    """First voxel of the ``roi`` crop centred on ``centre``, shifted to lie inside ``shape`` (voxels per axis).

    Examples
    --------
    >>> centred_start((1, 50, 99), (16, 16, 16), (100, 100, 100))
    [0, 42, 84]
    """
    return [int(min(max(int(c) - r // 2, 0), n - r)) for c, r, n in zip(centre, roi, shape)]


def deal(order: npt.NDArray[np.int64] | Sequence[int], *, rank: int, world_size: int, count: int) -> list[int]:
    """Rank ``rank``'s ``count`` items of ``order``: positions ``rank, rank + world_size, …``, wrapping around.

    With ``count = ceil(len(order) / world_size)`` every item goes to exactly one rank, and the last
    ranks are topped up from the start of ``order`` so that all ranks get ``count`` items.

    Examples
    --------
    >>> [deal([10, 11, 12, 13, 14], rank=r, world_size=3, count=2) for r in range(3)]
    [[10, 13], [11, 14], [12, 10]]
    """
    n = len(order)
    return [int(order[(rank + k * world_size) % n]) for k in range(count)]


def check_rank(rank: int, world_size: int) -> None:
    """Raise :class:`~sapkit.errors.ConfigError` unless ``0 ≤ rank < world_size`` and ``world_size ≥ 1``."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ConfigError(f"need 0 ≤ rank < world_size with world_size ≥ 1, got rank={rank}, world_size={world_size}")


def _readonly(a: npt.NDArray) -> npt.NDArray:
    v = a.view()
    v.flags.writeable = False
    return v
