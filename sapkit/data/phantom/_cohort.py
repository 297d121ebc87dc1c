"""Subjects, scans (repeat scans with pose changes), and cohort writing (NIfTI + manifest)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import numpy.typing as npt
import pandas as pd

from sapkit.config import SynthConfig
from sapkit.errors import ConfigError
from sapkit.label_maps import FINE_ATLAS, FINE_TO_SKELETON
from sapkit.data.phantom._anatomy import HALF_DEPTH, HALF_WIDTH, Z_BOTTOM, Z_TOP, Pose, SubjectParams, Tissue, body_parts
from sapkit.data.phantom._contrast import Site, make_sites, subject_lut, synthesise_channels
from sapkit.data.phantom._lesions import grow_lesions, lesion_intensities, sample_lesion_count, sample_nodes, sample_volumes_ml
from sapkit.data.phantom._render import render_body
from sapkit.data.phantom._shapes import Grid, rotation
from sapkit.data.manifest import write_manifest
from sapkit.io.atomic import atomic_write_text
from sapkit.io.nifti import save_nifti
from sapkit.jobs.progress import progress_bar
from sapkit.imaging.components import label_components

__all__ = ["Subject", "SynthScan", "make_grid", "make_subject", "make_scan", "generate_cohorts", "is_generated",
           "LESION_COLUMNS"]

_COHORT_CODE = {"healthy": 1, "patient": 2}
_FINE_TO_SKELETON_LUT = np.zeros(256, np.uint8)
for _k, _v in FINE_TO_SKELETON.items():
    _FINE_TO_SKELETON_LUT[_k] = _v
LESION_COLUMNS = ("scan_id", "subject_id", "lesion_id", "bone_group", "seed_label", "n_voxels", "volume_ml")


@dataclass(frozen=True)
class Subject:
    """One synthetic person: anatomy parameters and tissue contrast (fixed across their scans)."""

    subject_id: str
    cohort: str
    index: int
    params: SubjectParams
    lut_t1: npt.NDArray[np.float32]
    lut_b1000: npt.NDArray[np.float32]
    seed: int


@dataclass(frozen=True)
class SynthScan:
    """One generated scan.

    Attributes
    ----------
    image : (2, X, Y, Z) float32
        Channel 0 = T1, channel 1 = b1000 (scanner units, ≥ 0).
    fine_label : (X, Y, Z) uint8
        Fine atlas (``sapkit.label_maps.FINE_ATLAS``).
    skeleton_label : (X, Y, Z) uint8
        10-class SAP map (ribs and discs → 0).
    lesion_label : (X, Y, Z) uint8
        1 inside metastases (all inside bone), else 0.
    lesions : DataFrame
        One row per metastasis, columns ``LESION_COLUMNS``.
    """

    scan_id: str
    subject_id: str
    cohort: str
    site: str
    grid: Grid
    pose: Pose
    image: npt.NDArray[np.float32]
    fine_label: npt.NDArray[np.uint8]
    skeleton_label: npt.NDArray[np.uint8]
    lesion_label: npt.NDArray[np.uint8]
    lesions: pd.DataFrame

    @property
    def affine(self) -> npt.NDArray[np.float64]:
        """(4, 4) voxel → world (RAS+ mm) matrix."""
        return self.grid.affine

    def __repr__(self) -> str:
        return (f"SynthScan({self.scan_id}; cohort: {self.cohort}; site: {self.site}; shape: {self.image.shape[1:]}; "
                f"spacing: {self.grid.spacing_mm} mm; lesions: {len(self.lesions)})")


def _check_config(config: SynthConfig) -> None:
    problems = []
    for name in ("n_healthy_subjects", "scans_per_subject", "n_patients", "n_sites"):
        if getattr(config, name) < (1 if name in ("scans_per_subject", "n_sites") else 0):
            problems.append(f"synth.{name} = {getattr(config, name)} must be ≥ {1 if name in ('scans_per_subject', 'n_sites') else 0}")
    if not 0.5 <= config.spacing_mm <= 10:
        problems.append(f"synth.spacing_mm = {config.spacing_mm} must be in [0.5, 10] mm")
    if not 200 <= config.height_mm <= 2000:
        problems.append(f"synth.height_mm = {config.height_mm} must be in [200, 2000] mm (skull base to knees)")
    lo, hi = config.limb_rotation_deg
    if not 0 <= lo <= hi <= 45:
        problems.append(f"synth.limb_rotation_deg = {config.limb_rotation_deg} must satisfy 0 ≤ low ≤ high ≤ 45")
    if config.lesion_volume_median_ml <= 0 or config.lesion_volume_sigma < 0 or config.lesion_count_max < 1:
        problems.append("synth.lesion_volume_median_ml must be > 0, lesion_volume_sigma ≥ 0, lesion_count_max ≥ 1")
    if problems:
        raise ConfigError("invalid synth config: " + "; ".join(problems) + "; fix the profile or the -p override")


def make_grid(config: SynthConfig) -> Grid:
    """The cohort's voxel grid: isotropic ``spacing_mm``, z covering ``height_mm``, centred at 0."""
    sp = float(config.spacing_mm)
    s0 = config.height_mm / (Z_TOP - Z_BOTTOM)
    shape = (int(np.ceil(2 * HALF_WIDTH * s0 / sp)), int(np.ceil(2 * HALF_DEPTH * s0 / sp)),
             int(round(config.height_mm / sp)))
    origin = tuple(float(-(n - 1) / 2 * sp) for n in shape)
    return Grid(shape, sp, origin)  # type: ignore[arg-type]


def make_subject(config: SynthConfig, *, cohort: str, index: int) -> Subject:
    """Draw one subject's anatomy and contrast from ``(config.seed, cohort, index)``.

    Raises
    ------
    ConfigError
        ``cohort`` not 'healthy' or 'patient'.
    """
    if cohort not in _COHORT_CODE:
        raise ConfigError(f"cohort must be 'healthy' or 'patient', got {cohort!r}")
    rng = np.random.default_rng([config.seed, _COHORT_CODE[cohort], index, 0])
    scale = config.height_mm / (Z_TOP - Z_BOTTOM) * float(rng.uniform(0.95, 1.03))
    curvature = float(rng.uniform(0.8, 1.2))
    nodes = sample_nodes(rng, scale=scale, curvature=curvature, n_mean=config.nodes_per_subject,
                         median_ml=config.lesion_volume_median_ml, sigma=0.8)
    bowel = tuple((tuple(rng.uniform((-80, -10, 960), (80, 60, 1150))), tuple(rng.uniform(15, 28, 3)))
                  for _ in range(int(rng.integers(4, 8))))
    params = SubjectParams(scale=scale, girth=float(rng.uniform(0.9, 1.12)), fat=float(rng.uniform(0.7, 1.5)),
                           bone=float(rng.uniform(0.92, 1.08)), curvature=curvature,
                           arm_abduction_deg=float(rng.uniform(1, 5)), leg_abduction_deg=float(rng.uniform(0, 4)),
                           organ_shift_mm=tuple(float(v) for v in rng.normal(0, 6, 9)), nodes=nodes, bowel=bowel)
    lut_t1, lut_b = subject_lut(rng)
    sid = f"{cohort[0]}{index:03d}"
    return Subject(sid, cohort, index, params, lut_t1, lut_b, config.seed)


def _pose(rng: np.random.Generator, scan_index: int, limb_deg: tuple[float, float]) -> Pose:
    rot = rotation(rng.normal(size=3), float(rng.uniform(1.0, 3.0)))
    shift = rng.uniform(-5.0, 5.0, 3)
    limbs = {}
    for key in ("arm_L", "arm_R", "leg_L", "leg_R"):
        axis = rng.normal(size=3) * np.array([1.0, 0.35, 1.0])  # flexion, (little) abduction, axial
        angle = float(rng.uniform(*limb_deg))
        limbs[key] = rotation(axis, angle) if scan_index > 0 else np.eye(3)
    return Pose(rot=rot, shift_mm=shift, limbs=limbs)


def make_scan(subject: Subject, grid: Grid, *, scan_index: int, site: Site, config: SynthConfig) -> SynthScan:
    """Pose, paint, add lesions (patients) and scanner effects for one scan of ``subject``.

    Scan 0 has the subject's rest posture; scans ≥ 1 rotate each limb by
    ``config.limb_rotation_deg`` about a random axis at its joint. Every scan gets its own small
    global pose change (1–3°, ≤ 5 mm per axis). Deterministic in ``(seed, cohort, index, scan_index)``.
    """
    rng = np.random.default_rng([subject.seed, _COHORT_CODE[subject.cohort], subject.index, 1 + scan_index])
    pose = _pose(rng, scan_index, config.limb_rotation_deg)
    tissue, fine, _ = render_body(body_parts(subject.params), subject.params, pose, grid,
                                  cortex_id=int(Tissue.CORTEX), marrow_id=int(Tissue.MARROW))
    nodes, n_nodes = label_components(tissue == Tissue.NODE, connectivity=6, order="C")  # node k gets values[k]
    instance = nodes.astype(np.uint16)
    values = [np.zeros((1, 2), np.float32), lesion_intensities(rng, int(n_nodes), kind="node")]
    scan_id = f"{subject.subject_id}_s{scan_index}"
    rows = []
    lesion = np.zeros(grid.shape, np.uint8)
    if subject.cohort == "patient":
        n = sample_lesion_count(rng, median=config.lesion_count_median, sigma=config.lesion_count_sigma,
                                maximum=config.lesion_count_max)
        vols = sample_volumes_ml(rng, n, median_ml=config.lesion_volume_median_ml, sigma=config.lesion_volume_sigma)
        les, grown = grow_lesions(fine, tissue, vols, rng, spacing_mm=grid.spacing_mm)
        inside = les > 0
        lesion[inside] = 1
        tissue[inside] = Tissue.LESION
        instance[inside] = les[inside] + np.uint16(n_nodes)
        values.append(lesion_intensities(rng, len(grown), kind="lesion"))
        for k, (group, seed_label, n_vox) in enumerate(grown, start=1):
            rows.append((scan_id, subject.subject_id, k, group, seed_label, n_vox, n_vox * grid.voxel_volume_ml))
    image = synthesise_channels(tissue, instance, np.concatenate(values), subject.lut_t1, subject.lut_b1000, site, rng)
    return SynthScan(scan_id, subject.subject_id, subject.cohort, site.name, grid, pose, image, fine,
                     _FINE_TO_SKELETON_LUT[fine], lesion, pd.DataFrame(rows, columns=list(LESION_COLUMNS)))


def _header() -> nib.Nifti1Header:
    hdr = nib.Nifti1Header()
    hdr.set_xyzt_units("mm", "sec")
    hdr["qform_code"] = 1
    hdr["sform_code"] = 1
    return hdr


def _write_scan(scan: SynthScan, out_dir: Path) -> dict[str, str]:
    folder = "healthy" if scan.cohort == "healthy" else "patients"
    hdr = _header()
    rel = {}
    for key, array, dtype in (("t1", np.rint(np.minimum(scan.image[0], 32767)), np.int16),
                              ("b1000", np.rint(np.minimum(scan.image[1], 32767)), np.int16),
                              ("skeleton_label", scan.skeleton_label, np.uint8),
                              ("fine_label", scan.fine_label, np.uint8),
                              ("lesion_label", scan.lesion_label, np.uint8)):
        if key == "lesion_label" and scan.cohort != "patient":
            rel[key] = ""
            continue
        name = f"{folder}/{scan.scan_id}_{key.replace('_label', '')}.nii.gz"
        save_nifti(array, scan.affine, out_dir / name, header=hdr, dtype=dtype)
        rel[key] = name
    return rel


def _config_json(config: SynthConfig) -> str:
    import dataclasses
    import json

    return json.dumps(dataclasses.asdict(config), sort_keys=True, indent=1)


def is_generated(out_dir: str | Path, config: SynthConfig) -> bool:
    """True when ``out_dir`` holds a complete cohort generated with exactly ``config``."""
    out_dir = Path(out_dir)
    record = out_dir / "synth_config.json"
    return (out_dir / "manifest.yaml").is_file() and record.is_file() and record.read_text() == _config_json(config)


def generate_cohorts(out_dir: str | Path, config: SynthConfig, *, progress: bool = True) -> Path:
    """Generate the healthy and patient cohorts into ``out_dir`` and write their manifest.

    Healthy subject ``i`` gets ``config.scans_per_subject`` scans, scan ``k`` at site
    ``(i + k) mod n_sites`` (a multi-site repeatability design); every patient has one scan at
    the first site, as in the paper. Files: ``healthy/`` and ``patients/`` NIfTI (T1 and b1000
    int16, labels uint8, fine atlas as the extra column ``fine_label``), ``lesions.csv`` (one row
    per metastasis), ``synth_config.json`` (the config used), ``manifest.yaml`` + ``manifest.csv``.
    Same config → byte-identical files.

    Parameters
    ----------
    out_dir : str or Path
        Destination folder (created).
    config : SynthConfig
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    Path
        ``out_dir/manifest.yaml``.

    Raises
    ------
    ConfigError
        Sizes, spacing or distributions out of range.
    """
    _check_config(config)
    out_dir = Path(out_dir)
    grid = make_grid(config)
    sites = make_sites(config.n_sites, seed=config.seed)
    jobs = [("healthy", i, k, sites[(i + k) % len(sites)]) for i in range(config.n_healthy_subjects)
            for k in range(config.scans_per_subject)]
    jobs += [("patient", i, 0, sites[0]) for i in range(config.n_patients)]
    rows, lesion_tables, subjects = [], [], {}
    for cohort, i, k, site in progress_bar(jobs, desc="synth scans", disable=not progress):
        subject = subjects.get((cohort, i)) or make_subject(config, cohort=cohort, index=i)
        subjects[(cohort, i)] = subject
        scan = make_scan(subject, grid, scan_index=k, site=site, config=config)
        rel = _write_scan(scan, out_dir)
        rows.append({"scan_id": scan.scan_id, "subject_id": scan.subject_id, "site": scan.site, "cohort": cohort,
                     "t1": rel["t1"], "b1000": rel["b1000"], "skeleton_label": rel["skeleton_label"],
                     "lesion_label": rel["lesion_label"], "fine_label": rel["fine_label"]})
        lesion_tables.append(scan.lesions)
    lesions = pd.concat(lesion_tables, ignore_index=True) if lesion_tables else pd.DataFrame(columns=list(LESION_COLUMNS))
    atomic_write_text(out_dir / "lesions.csv", lesions.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(out_dir / "synth_config.json", _config_json(config))
    description = (f"sapkit synthetic whole-body MRI (T1, b1000): {config.n_healthy_subjects} healthy subjects × "
                   f"{config.scans_per_subject} scans, {config.n_patients} patients; {grid.spacing_mm} mm isotropic, "
                   f"grid {grid.shape}, seed {config.seed}")
    return write_manifest(out_dir, pd.DataFrame(rows), name="sapkit-synthetic", description=description,
                          licence="CC0-1.0", source=f"sapkit.data.phantom (seed {config.seed})",
                          label_maps={"fine": dict(FINE_ATLAS)})
