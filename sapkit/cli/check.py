"""``sapkit check MANIFEST``: validate a manifest, print a per-scan summary and the stage the data is ready for.

A manifest that ``sapkit preprocess`` wrote for unlabelled scans is valid data, not yet training
data: ``check`` says so (ready for skeleton labelling, not yet for SAP pretraining) and prints the
next command — ``sapkit propagate`` when a subject has one labelled scan, else the
TotalSegmentator-MR mapping of notebook 01 (``sapkit.labels.mapping.totalseg_to_skeleton``).
"""

from __future__ import annotations

import argparse

from sapkit.data.manifest import Manifest, load_manifest
from sapkit.io.nifti import orientation_code, read_image, spacing_from_affine

__all__ = ["add_arguments", "outputs", "run", "readiness"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", help="manifest.yaml or the folder holding it")


def outputs(args: argparse.Namespace) -> None:
    """``check`` writes nothing."""
    return None


def readiness(manifest: Manifest) -> tuple[list[str], list[str], list[str]]:
    """``(ready for, not yet for, next steps)``: the stages the data serves and what to do next.

    Healthy scans without ``skeleton_label`` hold SAP pretraining back; a subject with one
    labelled scan can lend it to its repeat scans (``sapkit propagate``); other subjects need
    labels of their own (TotalSegmentator-MR mapped to the SAP classes, notebook 01).
    """
    healthy, patients = manifest.healthy(), manifest.patients()
    missing = healthy[healthy["skeleton_label"] == ""]
    ready, not_yet, steps = [], [], []
    if len(missing):
        ready.append("skeleton labelling (propagation from one labelled scan per subject / TotalSegmentator-MR mapping)")
        not_yet.append(f"SAP pretraining ({len(missing)} of {len(healthy)} healthy scans have no skeleton_label)")
        lent = healthy[healthy["skeleton_label"] != ""]["subject_id"]
        can = sorted(set(missing["subject_id"]) & set(lent))
        if can:
            steps.append(f"sapkit propagate {manifest.path} --out LABELLED_DIR   # {len(missing[missing['subject_id'].isin(can)])} "
                         f"scan(s) of {len(can)} subject(s) get the labels of their labelled scan")
        rest = sorted(set(missing["subject_id"]) - set(lent))
        if rest:
            steps.append(f"label one scan of subject(s) {rest[:5]}{' …' if len(rest) > 5 else ''}: TotalSegmentator-MR "
                         "(total_mr + vertebrae_mr) mapped with sapkit.labels.mapping.totalseg_to_skeleton (notebook 01), "
                         "then sapkit propagate")
    elif len(healthy):
        ready.append(f"SAP pretraining ({len(healthy)} labelled healthy scans)")
        steps.append(f"sapkit split {manifest.path} --run-dir RUN && sapkit train skeleton --data {manifest.path.parent} "
                     "--run-dir RUN")
    if len(patients):
        ready.append(f"lesion fine-tuning and evaluation ({len(patients)} patient scans)")
    else:
        not_yet.append("lesion fine-tuning (no patient scans)")
    return ready, not_yet, steps


def run(args: argparse.Namespace) -> int:
    manifest = load_manifest(args.manifest, require_labels=False)
    print(repr(manifest))
    print(f"{'scan_id':<24} {'subject':<16} {'cohort':<8} {'site':<8} {'shape':<18} {'spacing (mm)':<20} orient")
    for _, row in manifest.scans.iterrows():
        image, affine, _ = read_image(row["t1"], what="T1")
        spacing = ", ".join(f"{s:.2f}" for s in spacing_from_affine(affine))
        print(f"{row['scan_id']:<24} {row['subject_id']:<16} {row['cohort']:<8} {row['site']:<8} "
              f"{str(image.shape):<18} {spacing:<20} {orientation_code(affine)}")
    print(f"OK: {len(manifest.scans)} scans valid")
    ready, not_yet, steps = readiness(manifest)
    print("ready for: " + "; ".join(ready) if ready else "ready for: nothing yet")
    if not_yet:
        print("not yet for: " + "; ".join(not_yet))
    for step in steps:
        print(f"next: {step}")
    return 0
