"""Nyúl histogram standardisation (Nyúl, Udupa & Zhang 2000), learned on a training cohort.

Each image's landmarks are percentiles of its body voxels. Learning maps every training image's
first and last landmark linearly onto a standard scale and averages where the other landmarks
land; applying maps an image's landmarks onto those standard positions piecewise linearly
(extended linearly beyond the ends, clipped at 0). Intensities of one tissue then mean the same
number in every scan and every site — but the mapping is learned from data, so it is learned on
the training cohort only (``raw.nyul.fit_on``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["landmarks", "fit_standard_scale", "apply_standard_scale"]


def landmarks(image: npt.ArrayLike, mask: npt.ArrayLike, percentiles: Sequence[float]) -> npt.NDArray[np.float64]:
    """Percentiles (``percentiles`` in [0, 100]) of the intensities inside ``mask``."""
    values = np.asarray(image)[np.asarray(mask, dtype=bool)]
    if values.size == 0:
        raise ValueError("landmarks need a non-empty body mask")
    return np.percentile(values.astype(np.float64), list(percentiles))


def fit_standard_scale(image_landmarks: Sequence[npt.ArrayLike], *, scale: tuple[float, float] = (0.0, 100.0)
                       ) -> npt.NDArray[np.float64]:
    """Standard landmark positions: each image's landmarks mapped so first/last hit ``scale``, averaged.

    Examples
    --------
    >>> fit_standard_scale([[0, 5, 10], [10, 30, 30]], scale=(0, 100)).tolist()
    [0.0, 75.0, 100.0]
    """
    rows = []
    for lm in image_landmarks:
        lm = np.asarray(lm, dtype=np.float64)
        width = lm[-1] - lm[0]
        if width <= 0:
            continue
        rows.append(scale[0] + (lm - lm[0]) / width * (scale[1] - scale[0]))
    if not rows:
        raise ValueError("no image with distinct first and last landmarks to learn a standard scale from")
    return np.mean(rows, axis=0)


def apply_standard_scale(image: npt.ArrayLike, image_landmarks: npt.ArrayLike,
                         standard: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Map intensities piecewise linearly from ``image_landmarks`` to ``standard`` (float32, ≥ 0).

    Examples
    --------
    >>> apply_standard_scale(np.array([0.0, 5.0, 10.0, 20.0]), [0, 10, 20], [0, 80, 100]).tolist()
    [0.0, 40.0, 80.0, 100.0]
    """
    x = np.asarray(image_landmarks, dtype=np.float64)
    y = np.asarray(standard, dtype=np.float64)
    keep = np.concatenate([[True], np.diff(x) > 0])
    x, y = x[keep], y[keep]
    img = np.asarray(image, dtype=np.float64)
    out = np.interp(img, x, y)
    lo_slope = (y[1] - y[0]) / (x[1] - x[0]) if len(x) > 1 else 1.0
    hi_slope = (y[-1] - y[-2]) / (x[-1] - x[-2]) if len(x) > 1 else 1.0
    out = np.where(img < x[0], y[0] + (img - x[0]) * lo_slope, out)
    out = np.where(img > x[-1], y[-1] + (img - x[-1]) * hi_slope, out)
    return np.maximum(out, 0.0).astype(np.float32)


def standardise_cohort(records: dict, scans: Sequence, config, out_dir, digests: dict) -> dict:
    """Learn the standard scale on the finished scans of the fit cohort and apply it to every scan.

    ``records`` are the per-scan QC records of :func:`sapkit.preprocessing.cohort.run_scan` (with
    the native ``landmarks`` of T1 and b1000); each scan's ``t1``/``b1000`` files are rewritten
    (atomically) and its ``qc.json`` records the digest of the standard applied. A scan already
    standardised with another standard is first recomputed from its inputs. The standard goes to
    ``qc/nyul.json``. Returns the updated records.
    """
    import hashlib
    import json

    from sapkit.io.atomic import atomic_write_text
    from sapkit.io.nifti import read_image, save_nifti
    from sapkit.preprocessing.cohort import run_scan
    from sapkit.preprocessing.layout import PreprocessDir

    out = PreprocessDir(out_dir)
    by_id = {s.scan_id: s for s in scans}
    ok = {k: r for k, r in records.items() if r.get("status") == "ok" and "landmarks" in r}
    fit = [r for r in ok.values() if config.nyul.fit_on == "all" or r["summary"].get("cohort") == "healthy"]
    if not fit:
        atomic_write_text(out.nyul_json, json.dumps({"applied": False, "reason": f"no finished scan in the fit cohort "
                                                     f"'{config.nyul.fit_on}'; set raw.nyul.fit_on=all"}, indent=1))
        return records
    standard = {ch: fit_standard_scale([r["landmarks"][ch] for r in fit], scale=config.nyul.scale).tolist()
                for ch in ("t1", "b1000")}
    digest = hashlib.sha256(json.dumps(standard).encode()).hexdigest()[:16]
    for scan_id, record in ok.items():
        if record.get("nyul_digest") == digest:
            continue
        if record.get("nyul_digest") is not None:  # standardised with an older standard: start from the inputs again
            record = run_scan(by_id[scan_id], config, out.root, digests[scan_id])
            if record.get("status") != "ok":
                records[scan_id] = record
                continue
        for ch in ("t1", "b1000"):
            path = out.root / record["files"][ch]
            image, affine, header = read_image(path, what=ch)
            save_nifti(apply_standard_scale(image, record["landmarks"][ch], standard[ch]), affine, path, header=header,
                       dtype=np.float32)
        record = {**record, "nyul_digest": digest}
        atomic_write_text(out.scan_qc_json(scan_id), json.dumps({k: v for k, v in record.items() if k != "reused"},
                                                                 indent=1, default=str))
        records[scan_id] = {**record, "reused": records[scan_id].get("reused", False)}
    atomic_write_text(out.nyul_json, json.dumps({"applied": True, "digest": digest, "fit_on": config.nyul.fit_on,
                                                 "percentiles": list(config.nyul.percentiles), "standard": standard,
                                                 "fit_scans": sorted(r["summary"]["scan_id"] for r in fit)}, indent=1))
    return records
