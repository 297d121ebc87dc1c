"""Patient cross-validation folds and the healthy train/validation split (``splits.json``).

Patients are split by subject into ``k`` folds stratified by lesion count: subjects are sorted
by (lesion count, subject id), cut into consecutive blocks of ``k`` and each block deals one
subject to each fold in a seeded random order — so every fold gets the same mix of light and
heavy disease and fold sizes differ by at most one. One fold (``tuning_fold``) is fixed for
threshold tuning; every other fold is the test fold once. Healthy subjects get a seeded
train/validation split. Scans of one subject never land in two sets.

Schema (docs/design.md §4)::

    {"k": 7, "seed": 42, "tuning_fold": 6, "folds": {"0": [subject_id, ...], ...},
     "healthy": {"train": [...], "val": [...]}, "lesion_counts": {subject_id: n}}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from sapkit.errors import ConfigError, ManifestError, SapkitError
from sapkit.imaging.components import label_components
from sapkit.io.atomic import atomic_write_text
from sapkit.io.nifti import read_label
from sapkit.io.run_paths import RunDir

__all__ = [
    "make_splits",
    "splits_from_manifest",
    "save_splits",
    "load_splits",
    "test_folds",
    "fold_subjects",
    "training_subjects",
    "resolve_folds",
    "lesion_counts",
]


def make_splits(
    lesion_counts: Mapping[str, int],
    healthy_subjects: Sequence[str] = (),
    *,
    k: int = 7,
    tuning_fold: int = 6,
    seed: int = 42,
    healthy_val_fraction: float = 0.12,
) -> dict[str, Any]:
    """Build the splits dictionary.

    Parameters
    ----------
    lesion_counts : mapping subject_id -> int
        Number of lesions (connected components) per patient subject.
    healthy_subjects : sequence of str
        Subject ids of the healthy cohort.
    k : int
        Number of folds (≥ 2), one of which is the tuning fold.
    tuning_fold : int
        Index in ``[0, k)`` of the threshold-tuning fold.
    seed : int
        Seed of the fold assignment and the healthy split.
    healthy_val_fraction : float
        Fraction of healthy subjects held out for validation (at least one when ≥ 2 subjects).

    Returns
    -------
    dict
        The splits (schema in the module docstring).

    Examples
    --------
    >>> s = make_splits({"p1": 1, "p2": 5, "p3": 2, "p4": 9}, ["h1", "h2"], k=2, tuning_fold=1)
    >>> sorted(len(v) for v in s["folds"].values())
    [2, 2]
    """
    if k < 2:
        raise ConfigError(f"splits.k must be ≥ 2, got {k}")
    if not 0 <= tuning_fold < k:
        raise ConfigError(f"splits.tuning_fold must be in [0, {k - 1}], got {tuning_fold}")
    if len(lesion_counts) < k:
        raise SapkitError(
            f"{len(lesion_counts)} patient subjects cannot fill {k} folds; lower splits.k or add patients"
        )
    if not 0 <= healthy_val_fraction < 1:
        raise ConfigError(f"splits.healthy_val_fraction must be in [0, 1), got {healthy_val_fraction}")
    rng = np.random.default_rng(seed)
    order = sorted(lesion_counts, key=lambda s: (int(lesion_counts[s]), str(s)))
    folds: dict[str, list[str]] = {str(f): [] for f in range(k)}
    for start in range(0, len(order), k):
        block = order[start:start + k]
        sizes = np.array([len(folds[str(f)]) for f in range(k)])
        # Folds with the fewest members first (random among ties) keep sizes within one.
        candidates = np.lexsort((rng.permutation(k), sizes))[: len(block)]
        for subject, fold in zip(block, rng.permutation(candidates)):
            folds[str(int(fold))].append(str(subject))
    healthy = sorted(map(str, set(healthy_subjects)))
    n_val = 0
    if len(healthy) >= 2 and healthy_val_fraction > 0:
        n_val = min(len(healthy) - 1, max(1, int(round(healthy_val_fraction * len(healthy)))))
    shuffled = list(rng.permutation(healthy)) if healthy else []
    return {
        "k": int(k),
        "seed": int(seed),
        "tuning_fold": int(tuning_fold),
        "folds": {f: sorted(v) for f, v in folds.items()},
        "healthy": {"train": sorted(map(str, shuffled[n_val:])), "val": sorted(map(str, shuffled[:n_val]))},
        "lesion_counts": {str(s): int(n) for s, n in sorted(lesion_counts.items())},
    }


def splits_from_manifest(manifest: Any, *, k: int = 7, tuning_fold: int = 6, seed: int = 42,
                         healthy_val_fraction: float = 0.12, connectivity: int = 26) -> dict[str, Any]:
    """Splits for a :class:`~sapkit.data.manifest.Manifest`; a filled ``fold`` column is honoured.

    Lesion counts are the 26-connected (by default) components of each subject's lesion masks.
    """
    counts = lesion_counts(manifest, connectivity=connectivity)
    healthy = sorted(set(manifest.healthy()["subject_id"]))
    splits = make_splits(counts, healthy, k=k, tuning_fold=tuning_fold, seed=seed,
                         healthy_val_fraction=healthy_val_fraction)
    patients = manifest.patients()
    if "fold" in patients.columns and (patients["fold"] != "").all():
        user = patients.groupby("subject_id")["fold"].first()
        values = sorted(set(user.astype(int)))
        if values != list(range(k)):
            raise ManifestError(
                f"manifest {manifest.path}: fold column has values {values}, expected 0..{k - 1}; "
                "fix the column or set splits.k"
            )
        splits["folds"] = {str(f): sorted(user[user.astype(int) == f].index) for f in range(k)}
        splits["source"] = "manifest fold column"
    return splits


def save_splits(splits: Mapping[str, Any], run_dir: str | Path) -> Path:
    """Write ``run_dir/splits.json`` atomically."""
    path = RunDir(run_dir).splits_json
    _validate(splits, path)
    return atomic_write_text(path, json.dumps(splits, indent=2))


def load_splits(run_dir: str | Path) -> dict[str, Any]:
    """Read and validate ``run_dir/splits.json`` (or a path to the JSON itself)."""
    path = Path(run_dir)
    if path.is_dir():
        path = RunDir(path).splits_json
    if not path.is_file():
        raise SapkitError(f"no splits at {path}; run notebook 00 or `sapkit split MANIFEST --run-dir DIR` first")
    try:
        splits = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SapkitError(f"{path} is not valid JSON ({exc}); delete it and re-run `sapkit split`") from None
    _validate(splits, path)
    return splits


def _validate(splits: Mapping[str, Any], path: Path) -> None:
    for key in ("k", "tuning_fold", "folds", "healthy"):
        if key not in splits:
            raise SapkitError(f"{path} lacks key '{key}'; re-create it with `sapkit split`")
    seen: dict[str, str] = {}
    for fold, subjects in splits["folds"].items():
        for s in subjects:
            if s in seen:
                raise SapkitError(f"{path}: subject {s} is in folds {seen[s]} and {fold}; a subject must be in one fold")
            seen[s] = fold
    overlap = set(splits["healthy"]["train"]) & set(splits["healthy"]["val"])
    if overlap:
        raise SapkitError(f"{path}: healthy subjects {sorted(overlap)} are in both train and val")


def test_folds(splits: Mapping[str, Any]) -> list[str]:
    """Fold ids used as test folds (every fold but the tuning fold), as strings."""
    return [f for f in sorted(splits["folds"], key=int) if int(f) != int(splits["tuning_fold"])]


test_folds.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def fold_subjects(splits: Mapping[str, Any], fold: str | int) -> list[str]:
    """Subjects evaluated by the model of ``fold``: a test fold id, or ``"tune"`` for the tuning fold."""
    if str(fold) == "tune":
        return list(splits["folds"][str(splits["tuning_fold"])])
    if str(fold) not in splits["folds"]:
        raise ConfigError(f"fold '{fold}' is not in splits.json (folds {sorted(splits['folds'])} or 'tune')")
    return list(splits["folds"][str(fold)])


def training_subjects(splits: Mapping[str, Any], fold: str | int) -> list[str]:
    """Subjects a model of ``fold`` trains on.

    For a test fold: every other fold, tuning fold included. For ``"tune"``: the test folds only
    (the model that predicts the tuning fold).
    """
    held_out = set(fold_subjects(splits, fold))
    return sorted(s for subjects in splits["folds"].values() for s in subjects if s not in held_out)


def resolve_folds(splits: Mapping[str, Any], folds: Sequence[Any]) -> list[str]:
    """Expand the ``lesion.folds`` parameter: ``["all"]`` = every test fold plus ``tune``.

    Examples
    --------
    >>> s = {"k": 3, "tuning_fold": 2, "folds": {"0": ["a"], "1": ["b"], "2": ["c"]}}
    >>> resolve_folds(s, ["all"]), resolve_folds(s, [1, "tune"])
    (['0', '1', 'tune'], ['1', 'tune'])
    """
    if list(map(str, folds)) == ["all"]:
        return test_folds(splits) + ["tune"]
    out = []
    for f in map(str, folds):
        if f != "tune" and f not in test_folds(splits):
            raise ConfigError(
                f"lesion.folds entry '{f}' is not a test fold {test_folds(splits)} or 'tune' "
                f"(fold {splits['tuning_fold']} is the tuning fold: its predictions come from fold 'tune')"
            )
        out.append(f)
    return out


def lesion_counts(manifest: Any, *, connectivity: int = 26) -> dict[str, int]:
    """Number of connected lesion components (``connectivity`` 6, 18 or 26) per patient subject, summed over its scans."""
    counts: dict[str, int] = {}
    for _, row in manifest.patients().iterrows():
        lesion, _, _ = read_label(row["lesion_label"], what="lesion_label")
        n = label_components(lesion, connectivity=connectivity)[1]
        counts[row["subject_id"]] = counts.get(row["subject_id"], 0) + n
    return counts
