"""``sapkit propagate MANIFEST --out DIR [--global-only]``: skeleton labels from one labelled scan per subject.

A thin shell over :func:`sapkit.labels.cohort_propagation.propagate_cohort` (which says what is
registered, warped and written); the input is only read.
"""

from __future__ import annotations

import argparse

from sapkit.io.output_paths import OutputPlan

__all__ = ["add_arguments", "outputs", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", help="manifest.yaml or the folder holding it (healthy scans partly labelled)")
    parser.add_argument("--out", required=True, help="new folder for the propagated labels and the new manifest")
    parser.add_argument("--global-only", action="store_true", help="global rigid registration only (no per-bone step)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the registration's metric sampling")


def outputs(args: argparse.Namespace) -> OutputPlan:
    """Reads the manifest and its files; writes labels and a new manifest into ``--out``."""
    from sapkit.data.manifest import declare_manifest_inputs
    from sapkit.labels.cohort_propagation import label_path, propagation_pairs

    plan = OutputPlan("sapkit propagate")
    man = declare_manifest_inputs(plan, args.manifest, require_labels=False)
    plan.writes_folder(args.out, "--out", lock=True)
    pairs = propagation_pairs(man)[0] if man is not None else []
    names = [label_path("", p.target["scan_id"]).as_posix() for p in pairs]
    plan.writes_in(args.out, [*names, "manifest.yaml", "manifest.csv"], "--out")
    return plan


def run(args: argparse.Namespace) -> int:
    from sapkit.data.manifest import load_manifest
    from sapkit.labels.cohort_propagation import propagate_cohort

    manifest = load_manifest(args.manifest, require_labels=False)
    done = propagate_cohort(manifest, args.out, refine=not args.global_only, seed=args.seed, report=print)
    if done.alone:
        print(f"subject(s) {done.alone} have no labelled scan to propagate from; label one scan each (notebook 01)")
    print(f"{len(done.labels)} scan(s) labelled; wrote {done.manifest_path}")
    return 0
