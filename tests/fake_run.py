"""A small fake run folder (GT, skeleton, probability maps per init, manifest, splits) for evaluation tests.

Not a test module: imported by tests/evaluation/test_cohort.py and tests/evaluation/test_tables.py. The real
pipeline (notebook 04) writes the same layout; this one is synthetic and deterministic.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from sapkit.data.manifest import write_manifest
from sapkit.data.splits import make_splits, save_splits
from sapkit.io.run_paths import RunDir

INITS = ("scratch", "ssl", "sap")
QUALITY = {"scratch": 0.45, "ssl": 0.65, "sap": 0.85}  # chance that a lesion gets a confident blob
SHAPE = (28, 24, 40)
SPACING = (3.0, 3.0, 4.0)


def _save(path: Path, data: np.ndarray) -> str:
    affine = np.diag([*SPACING, 1.0])
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    nib.save(img, str(path))
    return path.name


def _ball(center, radius_vox):
    grid = np.ogrid[tuple(slice(0, s) for s in SHAPE)]
    d = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, center, radius_vox))
    return d


def write_fake_run(run_dir: Path, *, n_patients: int = 6, seed: int = 0) -> Path:
    """Write ``run_dir`` with data/, splits.json (k = 3, tuning fold 2) and predictions/<init>/."""
    rng = np.random.default_rng(seed)
    rd = RunDir(run_dir)
    data = rd.data
    data.mkdir(parents=True, exist_ok=True)
    rows, counts = [], {}
    skel = np.zeros(SHAPE, np.int16)
    skel[10:18, 8:16, 2:14] = 5  # pelvis
    skel[10:18, 8:16, 14:38] = 3  # lumbar
    for i in range(n_patients):
        sid = f"p{i:02d}"
        gt = np.zeros(SHAPE, np.uint8)
        probs = {init: np.zeros(SHAPE, np.float32) for init in INITS}
        n_les = 2 + i % 3
        for j in range(n_les):
            c = (rng.integers(6, 22), rng.integers(5, 19), rng.integers(5, 35))
            r = rng.uniform(0.8, 2.5)
            d = _ball(c, (r, r, r * 0.75))
            gt[d <= 1] = 1
            for init in INITS:
                if rng.random() < QUALITY[init]:
                    probs[init] = np.maximum(probs[init], np.clip(1.0 - 0.45 * d, 0, 1) * rng.uniform(0.6, 1.0))
        for init in INITS:
            for _ in range(rng.integers(0, 3)):  # false positives
                c = (rng.integers(3, 25), rng.integers(3, 21), rng.integers(3, 37))
                probs[init] = np.maximum(probs[init], np.clip(0.9 - 0.6 * _ball(c, (1.2, 1.2, 1.0)), 0, 1)
                                         * rng.uniform(0.3, 0.9))
        counts[sid] = n_les
        t1 = rng.normal(100, 10, SHAPE).astype(np.float32)
        t1[gt > 0] -= 40
        b1000 = rng.normal(30, 5, SHAPE).astype(np.float32)
        b1000[gt > 0] += 60
        rows.append({"scan_id": f"{sid}_s0", "subject_id": sid, "site": "site0", "cohort": "patient",
                     "t1": _save(data / f"{sid}_t1.nii.gz", t1), "b1000": _save(data / f"{sid}_b1000.nii.gz", b1000),
                     "skeleton_label": _save(data / f"{sid}_skel.nii.gz", skel),
                     "lesion_label": _save(data / f"{sid}_lesion.nii.gz", gt)})
        for init in INITS:
            rd.predictions(init).mkdir(parents=True, exist_ok=True)
            _save(rd.probability_map(init, f"{sid}_s0"), probs[init].astype(np.float32))
    write_manifest(data, pd.DataFrame(rows), name="fake", description="fake run for evaluation tests")
    save_splits(make_splits(counts, [], k=3, tuning_fold=2, seed=42), run_dir)
    return run_dir


def write_fake_eval(run_dir: Path, *, leader: str, n_patients: int = 12, seed: int = 0) -> Path:
    """Write ``run_dir/eval/patients.csv`` and ``comparisons.csv`` in which ``leader`` is clearly best on every
    key metric (higher F2 and Dice, fewer false positives) and the other two inits are close."""
    from sapkit.evaluation.tables import compare_inits

    rng = np.random.default_rng(seed)
    skill = {init: (0.75 if init == leader else 0.35 + 0.05 * k) for k, init in enumerate(INITS)}
    rows = []
    for i in range(n_patients):
        for init in INITS:
            s = float(np.clip(skill[init] + rng.normal(0, 0.08), 0, 1))
            rows.append({"init": init, "scan_id": f"p{i:02d}_s0", "f2": s, "dice_mean": 0.6 * s, "global_dice": 0.7 * s,
                         "fp": float(round(20 * (1 - s))), "sensitivity": s, "precision": s / 2})
    patients = pd.DataFrame(rows)
    lesions = pd.DataFrame({"init": list(INITS) * 2, "scan_id": ["p00_s0"] * 6, "detected": [True] * 6,
                            "dice": rng.uniform(0.3, 0.8, 6), "nsd": rng.uniform(0.3, 0.8, 6)})
    rd = RunDir(run_dir)
    rd.eval_dir.mkdir(parents=True, exist_ok=True)
    patients.to_csv(rd.eval_table("patients"), index=False)
    compare_inits(patients, lesions).to_csv(rd.eval_table("comparisons"), index=False)
    return Path(run_dir)
