"""DWI → T1 registration, one DWI station at a time (SimpleITK, Mattes mutual information).

DWI moves relative to T1 between the two acquisitions (breathing, EPI distortion, table
position), differently for each station. The fixed image is the stitched T1 cropped to the DWI
station's extent along the table ± a margin, sampled inside its body mask; the moving image is
the station's lowest b-value (the most anatomy). Mutual information compares the two contrasts
without assuming a relation between them. The transform is a translation (default) or a rigid
motion about the station centre, found from the scanner position (identity) over a smoothing
pyramid by the Nelder–Mead simplex (SimpleITK's Amoeba). A derivative-free optimiser, because the
Mattes MI gradient on coarse DWI grids is noisy enough to make gradient descent shrink its step
and stop 2–3 mm off along the slice direction (measured on the synthetic cohort); the simplex
reaches the metric's minimum. Metric sampling is regular with a fixed seed: deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from sapkit.config import RegisterConfig
from sapkit.imaging.resample import to_sitk
from sapkit.preprocessing.geometry import Volume, corners_mm

__all__ = ["Registration", "register_station", "identity_transform", "registration_method", "run_registration",
           "crop_along"]

_SEED = 20240


@dataclass(frozen=True)
class Registration:
    """Result for one station.

    Attributes
    ----------
    transform : SimpleITK transform
        Fixed (T1) world → moving (DWI station) world, RAS+ mm.
    translation_mm : (3,) float
        Translation part (mm, RAS+): the DWI station's content sits this far from the T1 position.
    rotation_deg : (3,) float
        Euler angles about x, y, z (deg; zeros for a translation).
    metric : float
        Final Mattes MI value (lower is better; SimpleITK's sign).
    accepted : bool
        False when the result moved more than ``max_shift_mm`` and identity was kept.
    stop : str
        The optimiser's stopping condition.
    """

    transform: Any
    translation_mm: tuple[float, float, float]
    rotation_deg: tuple[float, float, float]
    metric: float
    accepted: bool
    stop: str

    @property
    def shift_mm(self) -> float:
        """Length of the translation (mm)."""
        return float(np.linalg.norm(self.translation_mm))


def identity_transform():
    """The SimpleITK identity transform (3D)."""
    import SimpleITK as sitk

    return sitk.TranslationTransform(3)


def registration_method(config: RegisterConfig, threads: int, fixed_mask_image=None):
    """A SimpleITK registration method with the kit's optimiser and pyramid, metric not yet set.

    Nelder–Mead simplex (2 mm initial step, ``config.iterations``, ``config.tolerance_mm``), scales
    from physical shift, linear interpolation, the pyramid ``config.shrink_factors`` /
    ``config.smoothing_mm`` (mm), ``threads`` metric threads, and the fixed-image mask when given.
    """
    import SimpleITK as sitk

    reg = sitk.ImageRegistrationMethod()
    reg.SetNumberOfThreads(int(threads))
    if fixed_mask_image is not None:
        reg.SetMetricFixedMask(fixed_mask_image)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsAmoeba(simplexDelta=2.0, numberOfIterations=int(config.iterations),
                             parametersConvergenceTolerance=float(config.tolerance_mm), functionConvergenceTolerance=1e-5)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([int(s) for s in config.shrink_factors])
    reg.SetSmoothingSigmasPerLevel([float(s) for s in config.smoothing_mm])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    return reg


def run_registration(reg, initial, fixed_image, moving_image):
    """Run ``reg`` from ``initial`` (not modified); the found transform, fixed world → moving world."""
    import SimpleITK as sitk

    reg.SetInitialTransform(initial, inPlace=False)
    result = reg.Execute(fixed_image, moving_image)
    if isinstance(result, sitk.CompositeTransform):
        result = result.GetBackTransform() if result.GetNumberOfTransforms() else result
    return result


def crop_along(fixed: Volume, mask: npt.NDArray, lo: float, hi: float, u: npt.NDArray) -> tuple[Volume, npt.NDArray]:
    """The slab of ``fixed`` whose voxels lie between ``lo`` and ``hi`` mm along ``u``."""
    a = fixed.affine
    axis = int(np.argmax(np.abs(u @ a[:3, :3])))
    t0 = float(u @ a[:3, 3])
    step = float(u @ a[:3, axis])
    k = (np.array([lo, hi]) - t0) / step
    k0 = int(np.clip(np.floor(k.min()), 0, fixed.array.shape[axis] - 1))
    k1 = int(np.clip(np.ceil(k.max()), k0, fixed.array.shape[axis] - 1)) + 1
    sl = [slice(None)] * 3
    sl[axis] = slice(k0, k1)
    affine = a.copy()
    affine[:3, 3] = (a @ np.r_[[k0 if d == axis else 0 for d in range(3)], 1.0])[:3]
    return Volume(fixed.array[tuple(sl)], affine), mask[tuple(sl)]


def register_station(fixed: Volume, fixed_mask: npt.ArrayLike, moving: Volume, *,
                     config: RegisterConfig = RegisterConfig(), threads: int = 2,
                     moving_mask: npt.ArrayLike | None = None) -> Registration:
    """Register one DWI station (``moving``) to the stitched T1 (``fixed``).

    Parameters
    ----------
    fixed : Volume
        Stitched T1 (any intensity scale).
    fixed_mask : (X, Y, Z) bool
        Body mask of ``fixed``; the metric samples only these voxels.
    moving : Volume
        The DWI station's lowest b-value image.
    config : RegisterConfig
    threads : int
        Threads of the metric (the result depends slightly on it; fixed for reproducibility).
    moving_mask : (X', Y', Z') bool, optional
        Where ``moving`` holds data (e.g. a stitched volume's coverage); fixed samples mapped
        outside it are left out of the metric. None: all of ``moving``'s grid.

    Returns
    -------
    Registration
    """
    import SimpleITK as sitk

    u = np.array([0.0, 0.0, 1.0])
    t = corners_mm(moving.array.shape, moving.affine) @ u
    crop, crop_mask = crop_along(fixed, np.asarray(fixed_mask, dtype=bool), t.min() - config.margin_mm,
                                  t.max() + config.margin_mm, u)
    if crop_mask.sum() < 100:
        return Registration(identity_transform(), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), float("nan"), False,
                            "fixed body mask does not cover the station")
    f_img, m_img = to_sitk(crop.array, crop.affine), to_sitk(moving.array, moving.affine)
    if config.transform == "rigid":
        initial = sitk.Euler3DTransform()
        initial.SetCenter([float(v) for v in moving.centre_mm])
    else:
        initial = sitk.TranslationTransform(3)
    reg = registration_method(config, threads, to_sitk(crop_mask.astype(np.uint8), crop.affine))
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=int(config.bins))
    reg.SetMetricSamplingStrategy(reg.REGULAR)
    reg.SetMetricSamplingPercentage(float(config.sampling_fraction), _SEED)
    if moving_mask is not None:
        reg.SetMetricMovingMask(to_sitk(np.asarray(moving_mask, dtype=np.uint8), moving.affine))
    result = run_registration(reg, initial, f_img, m_img)
    params = np.asarray(result.GetParameters(), dtype=float)
    if config.transform == "rigid":
        rotation, translation = np.rad2deg(params[:3]), params[3:6]
    else:
        rotation, translation = np.zeros(3), params[:3]
    stop = reg.GetOptimizerStopConditionDescription()
    if float(np.linalg.norm(translation)) > config.max_shift_mm:
        return Registration(identity_transform(), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), float(reg.GetMetricValue()), False,
                            f"rejected: |t| = {np.linalg.norm(translation):.1f} mm > max_shift_mm; {stop}")
    return Registration(result, tuple(float(v) for v in translation), tuple(float(v) for v in rotation),  # type: ignore[arg-type]
                        float(reg.GetMetricValue()), True, stop)
