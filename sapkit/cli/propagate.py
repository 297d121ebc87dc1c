"""``sapkit propagate MANIFEST --out DIR [--global-only]``: skeleton labels from one labelled scan per subject.

For every subject with a labelled healthy scan (``skeleton_label``) and unlabelled ones, the
labels of its first labelled scan are carried onto each unlabelled scan by
:func:`sapkit.labels.propagation.propagate_labels` (global rigid, then per-bone rigid registration
of the T1 images; nearest-neighbour warping). Writes ``DIR/labels/<scan_id>_skeleton.nii.gz`` (uint8,
on the target's T1 grid) and a new manifest in ``DIR`` naming the input's images and every label;
the input is only read. Subjects without any labelled scan are listed and keep their empty label.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from sapkit.io.output_paths import OutputPlan

__all__ = ["add_arguments", "outputs", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", help="manifest.yaml or the folder holding it (healthy scans partly labelled)")
    parser.add_argument("--out", required=True, help="new folder for the propagated labels and the new manifest")
    parser.add_argument("--global-only", action="store_true", help="global rigid registration only (no per-bone step)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the registration's metric sampling")


def _pairs(manifest) -> tuple[list[tuple[dict, dict]], list[str]]:
    """(labelled reference row, unlabelled target row) per scan to label, and subjects with nothing to lend."""
    pairs, alone = [], []
    for subject, scans in manifest.healthy().groupby("subject_id", sort=True):
        rows = scans.sort_values("scan_id").to_dict("records")
        refs = [r for r in rows if r["skeleton_label"]]
        targets = [r for r in rows if not r["skeleton_label"]]
        if targets and not refs:
            alone.append(str(subject))
        pairs += [(refs[0], t) for t in targets] if refs else []
    return pairs, alone


def outputs(args: argparse.Namespace) -> OutputPlan:
    """Reads the manifest and its files; writes labels and a new manifest into ``--out``."""
    from sapkit.data.manifest import declare_manifest_inputs

    plan = OutputPlan("sapkit propagate")
    man = declare_manifest_inputs(plan, args.manifest, require_labels=False)
    plan.writes_folder(args.out, "--out", lock=True)
    names = [f"labels/{t['scan_id']}_skeleton.nii.gz" for _, t in (_pairs(man)[0] if man is not None else [])]
    plan.writes_in(args.out, [*names, "manifest.yaml", "manifest.csv"], "--out")
    return plan


def run(args: argparse.Namespace) -> int:
    from sapkit.data.manifest import PATH_COLUMNS, load_manifest, write_manifest
    from sapkit.io.nifti import read_image, read_label, save_nifti
    from sapkit.labels.propagation import propagate_labels

    manifest = load_manifest(args.manifest, require_labels=False)
    out = Path(args.out)
    pairs, alone = _pairs(manifest)
    labels = {}
    for ref, target in pairs:
        ref_t1, ref_affine, _ = read_image(ref["t1"], what="t1")
        ref_label, _, _ = read_label(ref["skeleton_label"], what="skeleton_label")
        t1, affine, header = read_image(target["t1"], what="t1")
        result = propagate_labels(ref_t1, ref_label, t1, moving_affine=ref_affine, fixed_affine=affine,
                                  refine=not args.global_only, seed=args.seed)
        path = out / "labels" / f"{target['scan_id']}_skeleton.nii.gz"
        save_nifti(result.label_map, affine, path, header=header, dtype=np.uint8)
        labels[target["scan_id"]] = str(path.resolve())
        kept = int(np.count_nonzero(result.label_map)) / max(1, int(np.count_nonzero(ref_label)))
        print(f"  {target['scan_id']:<20} <- {ref['scan_id']:<20} {kept:.0%} of the reference's bone voxels")
    table = manifest.scans.copy()
    table["skeleton_label"] = [labels.get(s, p) for s, p in zip(table["scan_id"], table["skeleton_label"])]
    columns = [c for c in PATH_COLUMNS + ("fine_label", "adc") if c in table.columns]
    for col in columns:  # extra columns (adc) stay relative to the input's data_root when loaded
        table[col] = [str(manifest.data_root / p) if p and not os.path.isabs(p) else p for p in table[col]]
    common = Path(os.path.commonpath([str(out.resolve())] + [p for c in columns for p in table[c] if p]))
    for col in columns:
        table[col] = [os.path.relpath(p, common) if p else "" for p in table[col]]
    written = write_manifest(out, table, name=f"{manifest.name}-propagated",
                             description=f"{manifest.description}; skeleton labels of {len(labels)} scan(s) propagated "
                                         "from one labelled scan per subject (sapkit propagate)",
                             licence=manifest.licence, source=manifest.source, label_maps=manifest.label_maps,
                             data_root=os.path.relpath(common, out.resolve()))
    if alone:
        print(f"subject(s) {alone} have no labelled scan to propagate from; label one scan each (notebook 01)")
    print(f"{len(labels)} scan(s) labelled; wrote {written}")
    return 0
