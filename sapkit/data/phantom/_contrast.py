"""Tissue → T1 / DWI b1000 intensities, and the scanner: PSF, texture, bias field, site, noise.

Intensities are in arbitrary scanner units (fat ≈ 1000 on T1). T1: fat bright, marrow
intermediate-bright, cortex dark, muscle intermediate, lungs dark. b1000: fat and marrow low;
spinal cord, spleen, kidneys, lymph nodes, bladder, prostate and metastases bright.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from sapkit.data.phantom._anatomy import Tissue

__all__ = ["Site", "make_sites", "TISSUE_T1", "TISSUE_B1000", "subject_lut", "synthesise_channels"]

#: Mean T1-weighted intensity per tissue (index = ``Tissue`` value).
TISSUE_T1 = np.zeros(len(Tissue), np.float32)
#: Mean b1000 intensity per tissue.
TISSUE_B1000 = np.zeros(len(Tissue), np.float32)
for _t, (_t1, _b) in {
    Tissue.AIR: (0, 0), Tissue.FAT: (1000, 25), Tissue.MUSCLE: (420, 70), Tissue.LUNG: (45, 12),
    Tissue.LIVER: (540, 110), Tissue.SPLEEN: (400, 420), Tissue.KIDNEY: (430, 380), Tissue.BLADDER: (160, 340),
    Tissue.HEART: (390, 40), Tissue.CORD: (460, 330), Tissue.CSF: (150, 55), Tissue.DISC: (300, 80),
    Tissue.MARROW: (800, 55), Tissue.CORTEX: (90, 10), Tissue.NODE: (330, 480), Tissue.LESION: (280, 480),
    Tissue.BOWEL: (430, 170), Tissue.VESSEL: (70, 20), Tissue.PROSTATE: (380, 300),
}.items():
    TISSUE_T1[_t], TISSUE_B1000[_t] = _t1, _b


@dataclass(frozen=True)
class Site:
    """Scanner site effects: channel scales, bias-field strength (fraction), Rician noise sd."""

    name: str
    t1_scale: float
    b1000_scale: float
    bias: float
    t1_noise: float
    b1000_noise: float


_FIXED_SITES = (
    Site("site_a", 1.00, 1.00, 0.10, 12.0, 18.0),
    Site("site_b", 0.80, 1.30, 0.22, 16.0, 26.0),
    Site("site_c", 1.25, 0.85, 0.16, 10.0, 30.0),
)


def make_sites(n_sites: int, *, seed: int) -> tuple[Site, ...]:
    """The first three sites are fixed; further ones are drawn from ``seed``."""
    sites = list(_FIXED_SITES[:n_sites])
    rng = np.random.default_rng([seed, 7919])
    for k in range(3, n_sites):
        sites.append(Site(f"site_{chr(ord('a') + k) if k < 26 else k}", float(rng.uniform(0.75, 1.3)),
                          float(rng.uniform(0.75, 1.3)), float(rng.uniform(0.08, 0.25)),
                          float(rng.uniform(9, 17)), float(rng.uniform(16, 32))))
    return tuple(sites)


def subject_lut(rng: np.random.Generator) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Per-subject tissue means: the tables above jittered by ±6 % (marrow ±12 %: age, red marrow)."""
    j1 = rng.uniform(0.94, 1.06, len(Tissue))
    jb = rng.uniform(0.94, 1.06, len(Tissue))
    j1[Tissue.MARROW] = rng.uniform(0.85, 1.1)
    jb[Tissue.MARROW] = rng.uniform(0.8, 1.4)
    return (TISSUE_T1 * j1).astype(np.float32), (TISSUE_B1000 * jb).astype(np.float32)


def _bias_field(shape, rng: np.random.Generator, strength: float) -> npt.NDArray[np.float32]:
    """exp of a random quadratic polynomial over the normalised grid, ~``strength`` max deviation."""
    axes = [np.linspace(-1, 1, n, dtype=np.float32).reshape([-1 if d == i else 1 for d in range(3)])
            for i, n in enumerate(shape)]
    c = rng.normal(0, 1, 9).astype(np.float32)
    c /= np.abs(c).sum()
    x, y, z = axes
    poly = c[0] * x + c[1] * y + c[2] * z + c[3] * x * x + c[4] * y * y + c[5] * z * z + c[6] * x * z + c[7] * y * z + c[8] * x * y
    return np.exp(np.float32(strength) * poly).astype(np.float32)


def synthesise_channels(
    tissue: npt.NDArray[np.uint8], instance: npt.NDArray[np.uint16], instance_values: npt.NDArray[np.float32],
    lut_t1: npt.NDArray[np.float32], lut_b: npt.NDArray[np.float32], site: Site, rng: np.random.Generator,
) -> npt.NDArray[np.float32]:
    """Turn a tissue map into the two MR channels of one scan.

    Parameters
    ----------
    tissue : (X, Y, Z) uint8
        ``Tissue`` per voxel.
    instance : (X, Y, Z) uint16
        0 or the index (1-based) of a lymph node / lesion whose own intensities override the table.
    instance_values : (N + 1, 2) float32
        (T1, b1000) per instance; row 0 unused.
    lut_t1, lut_b : (n_tissues,) float32
        Subject's tissue means.
    site : Site
    rng : numpy Generator
        Draws texture, bias field and noise.

    Returns
    -------
    (2, X, Y, Z) float32
        Channel 0 = T1, channel 1 = b1000, non-negative (Rician magnitude).
    """
    out = np.empty((2,) + tissue.shape, np.float32)
    inst = np.flatnonzero(instance)
    # One tissue texture for both channels (same microstructure), smoothed over ~1 voxel.
    texture = ndimage.gaussian_filter(rng.standard_normal(tissue.shape, dtype=np.float32), 1.0, truncate=3.0)
    for ch, (lut, scale, noise_sd) in enumerate(((lut_t1, site.t1_scale, site.t1_noise),
                                                 (lut_b, site.b1000_scale, site.b1000_noise))):
        img = lut[tissue]
        img.ravel()[inst] = instance_values[instance.ravel()[inst], ch]
        img *= 1.0 + np.float32(0.12 if ch == 0 else 0.2) * texture
        img = ndimage.gaussian_filter(img, 0.5, truncate=3.0)  # point-spread function
        img *= _bias_field(tissue.shape, rng, site.bias * (1.0 if ch == 0 else 0.6)) * np.float32(scale)
        n1 = rng.standard_normal(tissue.shape, dtype=np.float32)
        n1 *= np.float32(noise_sd)
        img += n1
        np.square(img, out=img)
        n2 = rng.standard_normal(tissue.shape, dtype=np.float32)
        n2 *= np.float32(noise_sd)
        np.square(n2, out=n2)
        img += n2
        np.sqrt(img, out=out[ch])
    return out
