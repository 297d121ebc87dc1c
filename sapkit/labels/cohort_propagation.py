"""Skeleton labels for a cohort from one labelled scan per subject (``sapkit propagate``).

For every subject with a labelled healthy scan (``skeleton_label``) and unlabelled ones, the labels of
its first labelled scan (by ``scan_id``) are carried onto each unlabelled scan by
:func:`sapkit.labels.propagation.propagate_labels` (global rigid, then per-bone rigid registration of
the T1 images; nearest-neighbour warping). Labels are written as ``<out>/labels/<scan_id>_skeleton.nii.gz``
(uint8, on the target's T1 grid) with a new manifest in ``<out>`` naming the input's images and every
label; the input is only read. Subjects without any labelled scan keep their empty label and are listed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from sapkit.data.manifest import OPTIONAL_PATH_COLUMNS, PATH_COLUMNS, Manifest, write_manifest
from sapkit.io.nifti import read_image, read_label, save_nifti
from sapkit.labels.propagation import propagate_labels

__all__ = ["PropagationPair", "propagation_pairs", "label_path", "CohortPropagation", "propagate_cohort"]


@dataclass(frozen=True)
class PropagationPair:
    """One scan to label (``target``) and the labelled scan of the same subject it borrows from."""

    reference: dict[str, Any]
    target: dict[str, Any]


def propagation_pairs(manifest: Manifest) -> tuple[list[PropagationPair], list[str]]:
    """Pairs to propagate (subjects and scans in ``scan_id`` order) and the subjects with nothing to lend."""
    pairs, alone = [], []
    for subject, scans in manifest.healthy().groupby("subject_id", sort=True):
        rows = scans.sort_values("scan_id").to_dict("records")
        refs = [r for r in rows if r["skeleton_label"]]
        targets = [r for r in rows if not r["skeleton_label"]]
        if targets and not refs:
            alone.append(str(subject))
        pairs += [PropagationPair(refs[0], t) for t in targets] if refs else []
    return pairs, alone


def label_path(out: str | Path, scan_id: str) -> Path:
    """Where the propagated label of ``scan_id`` goes under ``out``."""
    return Path(out) / "labels" / f"{scan_id}_skeleton.nii.gz"


@dataclass(frozen=True)
class CohortPropagation:
    """What :func:`propagate_cohort` did: ``labels`` scan_id → written path, ``bone_kept`` scan_id →
    labelled voxels of the target over those of its reference, subjects ``alone`` and the manifest path."""

    labels: dict[str, Path]
    bone_kept: dict[str, float]
    alone: list[str]
    manifest_path: Path


def _relocated(manifest: Manifest, labels: dict[str, Path], out: Path) -> tuple[Any, str]:
    """The scan table with the new labels, every path relative to one common root, and that root from ``out``."""
    table = manifest.scans.copy()
    table["skeleton_label"] = [str(labels[s].resolve()) if s in labels else p
                               for s, p in zip(table["scan_id"], table["skeleton_label"])]
    columns = [c for c in PATH_COLUMNS + tuple(OPTIONAL_PATH_COLUMNS) if c in table.columns]
    for col in columns:  # relative paths of the input count from its data_root
        table[col] = [str(manifest.data_root / p) if p and not os.path.isabs(p) else p for p in table[col]]
    common = Path(os.path.commonpath([str(out.resolve())] + [p for c in columns for p in table[c] if p]))
    for col in columns:
        table[col] = [os.path.relpath(p, common) if p else "" for p in table[col]]
    return table, os.path.relpath(common, out.resolve())


def propagate_cohort(manifest: Manifest, out: str | Path, *, refine: bool = True, seed: int = 42,
                     report: Callable[[str], None] | None = None) -> CohortPropagation:
    """Label every unlabelled healthy scan from its subject's labelled scan; write labels and a manifest.

    Parameters
    ----------
    manifest : Manifest
        Loaded with ``require_labels=False``; only read.
    out : path
        New folder (the caller holds its lock): ``labels/`` and ``manifest.yaml``/``manifest.csv``.
    refine : bool
        Per-bone rigid refinement after the global step (``False``: global rigid only).
    seed : int
        Seed of the registration's metric sampling.
    report : callable, optional
        Called with one line per labelled scan.
    """
    out = Path(out)
    pairs, alone = propagation_pairs(manifest)
    labels: dict[str, Path] = {}
    kept: dict[str, float] = {}
    for pair in pairs:
        ref, target = pair.reference, pair.target
        ref_t1, ref_affine, _ = read_image(ref["t1"], what="t1")
        ref_label, _, _ = read_label(ref["skeleton_label"], what="skeleton_label")
        t1, affine, header = read_image(target["t1"], what="t1")
        result = propagate_labels(ref_t1, ref_label, t1, moving_affine=ref_affine, fixed_affine=affine,
                                  refine=refine, seed=seed)
        path = label_path(out, target["scan_id"])
        save_nifti(result.label_map, affine, path, header=header, dtype=np.uint8)
        labels[target["scan_id"]] = path
        kept[target["scan_id"]] = int(np.count_nonzero(result.label_map)) / max(1, int(np.count_nonzero(ref_label)))
        if report:
            report(f"  {target['scan_id']:<20} <- {ref['scan_id']:<20} {kept[target['scan_id']]:.0%} "
                   "of the reference's bone voxels")
    table, data_root = _relocated(manifest, labels, out)
    written = write_manifest(out, table, name=f"{manifest.name}-propagated",
                             description=f"{manifest.description}; skeleton labels of {len(labels)} scan(s) propagated "
                                         "from one labelled scan per subject (sapkit propagate)",
                             licence=manifest.licence, source=manifest.source, label_maps=manifest.label_maps,
                             data_root=data_root)
    return CohortPropagation(labels, kept, alone, Path(written))
