"""Metastases inside bone and DWI-bright look-alikes (lymph nodes) outside it.

Metastases (MET-RADS-P): low T1, high b1000, irregular, grown voxel by voxel *inside* labelled
bone (vertebrae, sacrum, hip bones, femurs, humeri, scapulae, clavicles, sternum, ribs), volumes
log-normal (median ≈ 0.5 mL, ≈ 25 % ≥ 1 mL), lesion count per patient heavy-tailed.
Lymph nodes have the same size and b1000 distribution and a low T1 in bright fat — locally they
look like lesions; only the skeleton around a lesion tells them apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from sapkit.data.phantom._anatomy import Tissue, node_station_centres
from sapkit.imaging.components import label_components
from sapkit.data.phantom._shapes import rotation

__all__ = ["LESION_SITE_WEIGHTS", "LesionRecord", "sample_lesion_count", "sample_volumes_ml", "sample_nodes",
           "grow_lesions", "lesion_intensities"]

#: Relative chance of a metastasis per bone group, with the fine-atlas labels of the group.
LESION_SITE_WEIGHTS: dict[str, tuple[float, tuple[int, ...]]] = {
    "spine": (0.38, tuple(range(1, 25))),
    "pelvis": (0.24, (25, 28, 29)),
    "femur": (0.12, (26, 27)),
    "ribs": (0.14, tuple(range(37, 61))),
    "humerus": (0.05, (30, 31)),
    "clavicle": (0.03, (34, 35)),
    "sternum": (0.02, (36,)),
    "scapula": (0.02, (32, 33)),
}
_BONE_LABELS = np.zeros(256, bool)
_BONE_LABELS[1:61] = True  # every labelled bone, ribs included; discs (61) are not bone


@dataclass(frozen=True)
class LesionRecord:
    """One metastasis as generated: id (value in the instance map), bone group, fine label at its
    seed, voxel count and volume (mL), and its mean T1/b1000 before scanner effects."""

    lesion_id: int
    bone_group: str
    seed_label: int
    n_voxels: int
    volume_ml: float
    t1: float
    b1000: float


def sample_lesion_count(rng: np.random.Generator, *, median: float, sigma: float, maximum: int) -> int:
    """Heavy-tailed count ≥ 1: round(log-normal(median, sigma)), capped at ``maximum``."""
    return int(np.clip(np.round(median * np.exp(sigma * rng.standard_normal())), 1, maximum))


def sample_volumes_ml(rng: np.random.Generator, n: int, *, median_ml: float, sigma: float,
                      min_ml: float = 0.05, max_ml: float = 25.0) -> npt.NDArray[np.float64]:
    """``n`` log-normal volumes (mL) with the given median and log-sd, clipped to [min, max]."""
    return np.clip(median_ml * np.exp(sigma * rng.standard_normal(n)), min_ml, max_ml)


def lesion_intensities(rng: np.random.Generator, n: int, *, kind: str) -> npt.NDArray[np.float32]:
    """(n, 2) T1 and b1000 means; lesions and nodes share the b1000 distribution."""
    b = 480.0 * np.exp(0.3 * rng.standard_normal(n))
    t1 = rng.uniform(220, 360, n) if kind == "lesion" else rng.uniform(260, 400, n)
    return np.stack([t1, b], axis=1).astype(np.float32)


def sample_nodes(rng: np.random.Generator, *, scale: float, curvature: float, n_mean: float,
                 median_ml: float, sigma: float) -> tuple:
    """Lymph nodes for ``SubjectParams.nodes``: canonical (centre, radii, angle) tuples.

    Volumes are drawn in world mL, then divided by ``scale³`` so the posed node has that volume.
    """
    stations = node_station_centres(curvature)
    n = int(rng.poisson(n_mean))
    vols = sample_volumes_ml(rng, n, median_ml=median_ml, sigma=sigma, min_ml=0.08, max_ml=6.0)
    nodes = []
    for v in vols:
        centre, spread = stations[int(rng.integers(len(stations)))]
        c = centre + spread * rng.uniform(-1, 1, 3)
        aspect = rng.uniform(0.6, 1.0, 3)
        aspect[2] = rng.uniform(1.0, 1.8)  # nodes are elongated along the vessels
        r_world = (3 * v * 1000 / (4 * np.pi) / np.prod(aspect)) ** (1 / 3) * aspect
        nodes.append((tuple(float(x) for x in c), tuple(float(x) for x in r_world / scale), float(rng.uniform(0, 180))))
    return tuple(nodes)


def _grow_one(seed, n_target: int, fine_label, taken, rng, spacing_mm: float):
    """Voxels of one irregular lesion grown inside bone around ``seed``; None if it does not fit."""
    r_vox = (3 * n_target / (4 * np.pi)) ** (1 / 3)
    h = int(np.ceil(3 * r_vox)) + 3
    lo = np.maximum(np.asarray(seed) - h, 0)
    hi = np.minimum(np.asarray(seed) + h + 1, fine_label.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    cand = _BONE_LABELS[fine_label[box]] & ~taken[box]
    grids = np.meshgrid(*[np.arange(a, b) - s for a, b, s in zip(lo, hi, seed)], indexing="ij")
    rot = rotation(rng.normal(size=3), float(rng.uniform(0, 180)))
    axes = rng.uniform(0.7, 1.4, 3)
    local = [sum(rot[j, i] * grids[j] for j in range(3)) / axes[i] for i in range(3)]
    dist = np.sqrt(local[0] ** 2 + local[1] ** 2 + local[2] ** 2)
    noise = ndimage.gaussian_filter(rng.standard_normal(dist.shape), 1.2)
    priority = (dist + 0.5) * np.exp(1.2 * noise / max(noise.std(), 1e-6) * 0.35)
    priority[~cand] = np.inf
    n_cand = int(cand.sum())
    if n_cand == 0:
        return None
    k = min(n_target, n_cand)
    flat = np.argpartition(priority.ravel(), k - 1)[:k]
    mask = np.zeros(dist.shape, bool)
    mask.ravel()[flat] = True
    mask &= cand
    comp, _ = label_components(mask, connectivity=6)
    seed_local = tuple(int(s - a) for s, a in zip(seed, lo))
    lab = comp[seed_local]
    if lab == 0:
        return None
    mask = comp == lab
    if mask.sum() < 0.6 * n_target:
        return None
    return box, mask


def grow_lesions(
    fine_label: npt.NDArray[np.uint8], tissue: npt.NDArray[np.uint8], volumes_ml: npt.ArrayLike,
    rng: np.random.Generator, *, spacing_mm: float, max_tries: int = 12,
) -> tuple[npt.NDArray[np.uint16], list[tuple[str, int, int]]]:
    """Grow one metastasis per requested volume inside labelled bone.

    Seeds are drawn in marrow of a bone group chosen by ``LESION_SITE_WEIGHTS``; each lesion is
    the ``n`` lowest-priority bone voxels (distance × smooth noise: irregular) around its seed,
    kept as the seed's 6-connected piece, never touching an earlier lesion (26-neighbourhood).
    A lesion that does not fit after ``max_tries`` seeds is skipped.

    Returns
    -------
    instance : (X, Y, Z) uint16
        0 = no lesion, k = voxels of the k-th grown lesion.
    grown : list of (bone_group, seed_label, n_voxels)
    """
    voxel_ml = spacing_mm ** 3 / 1000.0
    instance = np.zeros(fine_label.shape, np.uint16)
    taken = np.zeros(fine_label.shape, bool)
    marrow = tissue == Tissue.MARROW
    groups, pools = [], []
    for name, (weight, labels) in LESION_SITE_WEIGHTS.items():
        idx = np.flatnonzero(marrow & np.isin(fine_label, labels))
        if idx.size:
            groups.append((name, weight))
            pools.append(idx)
    grown: list[tuple[str, int, int]] = []
    if not groups:
        return instance, grown
    w = np.array([g[1] for g in groups])
    w /= w.sum()
    for vol in np.asarray(volumes_ml, dtype=float):
        n_target = max(1, int(round(vol / voxel_ml)))
        for _ in range(max_tries):
            gi = int(rng.choice(len(groups), p=w))
            seed = np.unravel_index(int(pools[gi][rng.integers(pools[gi].size)]), fine_label.shape)
            if taken[seed]:
                continue
            hit = _grow_one(seed, n_target, fine_label, taken, rng, spacing_mm)
            if hit is None:
                continue
            box, mask = hit
            instance[box][mask] = len(grown) + 1
            taken[box] |= ndimage.binary_dilation(mask, structure=np.ones((3, 3, 3), bool))
            grown.append((groups[gi][0], int(fine_label[seed]), int(mask.sum())))
            break
    return instance, grown
