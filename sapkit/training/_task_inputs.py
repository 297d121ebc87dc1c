"""Inputs the training tasks share (private): the healthy cohort, DDP placement, the validation stream.

The skeleton and SSL tasks train on the healthy scans of ``splits.json`` (or on cases passed
directly); every task reads its DDP rank from ``torchrun``'s environment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from sapkit.config import Config
from sapkit.data.splits import load_splits
from sapkit.errors import SapkitError
from sapkit.io.run_paths import RunDir

__all__ = ["STREAM_VAL", "resolve_cases", "rank_and_world"]

#: Random-stream id of validation draws (fixed SSL validation patches and their corruption).
STREAM_VAL = 204


def resolve_cases(run_dir: Path, config: Config, data: str | Path | None, train_cases: Sequence[Any] | None,
                  val_cases: Sequence[Any] | None, *, need_skeleton: bool) -> tuple[Sequence[Any], Any, str]:
    """Cases given directly, or the healthy cohort of the run's manifest; with a description for the model card."""
    if train_cases is None:
        return _healthy_cases(run_dir, config, data, need_skeleton=need_skeleton)
    return train_cases, val_cases, f"{len(train_cases)} training and {len(val_cases or [])} validation scans given directly"


def rank_and_world() -> tuple[int, int]:
    """This process's DDP rank and the number of ranks (torchrun's RANK / WORLD_SIZE; 0 / 1 otherwise)."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def _healthy_cases(run_dir: Path, config: Config, data: str | Path | None, *, need_skeleton: bool) -> tuple[list, list, str]:
    from sapkit.data.cases import load_cases
    from sapkit.data.manifest import load_manifest

    manifest = load_manifest(RunDir.data_dir(run_dir, data))
    splits = load_splits(run_dir)
    pct = tuple(config.preprocess.clip_percentiles)
    train = load_cases(manifest, cohort="healthy", subjects=splits["healthy"]["train"], percentiles=pct)
    val = load_cases(manifest, cohort="healthy", subjects=splits["healthy"]["val"], percentiles=pct)
    if need_skeleton:
        missing = [c.scan_id for c in train + val if c.skeleton is None]
        if missing:
            raise SapkitError(f"healthy scans {missing[:5]} have no skeleton_label in {manifest.path}; "
                              "label them (notebook 01) or remove them from the manifest")
    desc = (f"manifest '{manifest.name}' ({manifest.path}); healthy cohort: {len(train)} training scans of "
            f"{len(set(c.subject_id for c in train))} subjects, {len(val)} validation scans of "
            f"{len(set(c.subject_id for c in val))} subjects (splits.json; no subject in both)")
    return train, val, desc
