"""Dataset fingerprint: what the scans look like before anyone trains on them.

Per scan: shape (voxels), spacing (mm), orientation code, affine handedness, per-channel
1/50/99 intensity percentiles, label volumes per class (mL). Dataset: median spacing, shape
range, sites, cohort sizes. Written as JSON next to the run (``fingerprint.json``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from sapkit.io.atomic import atomic_write_text
from sapkit.io.nifti import orientation_code, read_label, read_scan, spacing_from_affine
from sapkit.data.manifest import Manifest
from sapkit.jobs.progress import progress_bar

__all__ = ["fingerprint_scan", "fingerprint_manifest", "save_fingerprint"]


def fingerprint_scan(row: Any, label_maps: dict[str, dict[int, str]]) -> dict[str, Any]:
    """Fingerprint one manifest row (absolute paths)."""
    scan = read_scan(row["t1"], row["b1000"])
    spacing = scan.spacing_mm
    voxel_ml = float(np.prod(spacing)) / 1000.0
    out: dict[str, Any] = {
        "scan_id": row["scan_id"], "subject_id": row["subject_id"], "site": row["site"], "cohort": row["cohort"],
        "shape": [int(s) for s in scan.image.shape[1:]],
        "spacing_mm": [round(s, 4) for s in spacing],
        "orientation": orientation_code(scan.affine),
        "handedness": "right" if np.linalg.det(scan.affine[:3, :3]) > 0 else "left",
    }
    for c, name in enumerate(("t1", "b1000")):
        p1, p50, p99 = np.percentile(scan.image[c], (1, 50, 99))
        out[f"{name}_percentiles"] = [float(p1), float(p50), float(p99)]
    for col, key in (("skeleton_label", "skeleton"), ("lesion_label", "lesion")):
        if row[col]:
            labels = read_label(row[col], what=col)[0]
            counts = np.bincount(labels.ravel().clip(0), minlength=max(label_maps[key]) + 1)
            out[f"{key}_volume_ml"] = {
                label_maps[key].get(v, str(v)): round(float(n) * voxel_ml, 3)
                for v, n in enumerate(counts) if v != 0 and n > 0
            }
    return out


def fingerprint_manifest(manifest: Manifest, *, progress: bool = False) -> dict[str, Any]:
    """Fingerprint every scan and summarise the dataset.

    Returns
    -------
    dict
        ``{"dataset": {...summary...}, "scans": [per-scan dicts]}``.
    """
    rows = list(manifest.scans.iterrows())
    if progress:
        rows = progress_bar(rows, desc="fingerprint", unit="scan")
    scans = [fingerprint_scan(row, manifest.label_maps) for _, row in rows]
    spacings = np.array([s["spacing_mm"] for s in scans])
    shapes = np.array([s["shape"] for s in scans])
    summary = {
        "name": manifest.name,
        "n_scans": len(scans),
        "n_healthy_scans": sum(s["cohort"] == "healthy" for s in scans),
        "n_patient_scans": sum(s["cohort"] == "patient" for s in scans),
        "n_subjects": int(manifest.scans["subject_id"].nunique()),
        "sites": sorted(set(manifest.scans["site"])),
        "median_spacing_mm": [float(v) for v in np.median(spacings, axis=0)],
        "shape_min": [int(v) for v in shapes.min(axis=0)],
        "shape_max": [int(v) for v in shapes.max(axis=0)],
        "orientations": sorted(set(s["orientation"] for s in scans)),
    }
    return {"dataset": summary, "scans": scans}


def save_fingerprint(fingerprint: dict[str, Any], path: str | Path) -> Path:
    """Write the fingerprint as JSON atomically."""
    return atomic_write_text(Path(path), json.dumps(fingerprint, indent=2))
