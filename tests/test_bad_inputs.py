"""A catalogue of malformed inputs: each raises one sapkit error naming the file or parameter and
the fix, and leaves every input file byte-identical.

Each case is a function ``case(root) -> (callable, regex)`` where ``root`` holds a valid tiny
cohort (``root/data/manifest.yaml``) that the case may break before the call; the digests of
every file under ``root`` are taken right before the call and compared after it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from sapkit.errors import SapkitError
from sapkit.io import save_nifti

from conftest import write_tiny_cohort

AFFINE = np.diag([2.0, 2.0, 3.0, 1.0])
SHAPE = (12, 10, 14)
CASES = []


def case(fn):
    CASES.append(fn)
    return fn


def _table(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "data" / "manifest.csv", dtype=str, keep_default_na=False)


def _write_table(root: Path, table: pd.DataFrame) -> None:
    table.to_csv(root / "data" / "manifest.csv", index=False)


def _load(root):
    from sapkit.manifest import load_manifest

    return lambda: load_manifest(root / "data")


# ---------------------------------------------------------------- manifest and NIfTI files
@case
def missing_file(root):
    (root / "data" / "p03_t1.nii.gz").unlink()
    return _load(root), r"p03_s0: T1 file .*p03_t1\.nii\.gz does not exist; check the path"


@case
def truncated_gzip(root):
    path = root / "data" / "p04_b1000.nii.gz"
    path.write_bytes(path.read_bytes()[:200])
    return _load(root), r"p04_b1000\.nii\.gz is not a readable NIfTI.*re-export"


@case
def not_a_nifti(root):
    (root / "data" / "p02_lesion.nii.gz").write_bytes(b"hello")
    return _load(root), r"p02_lesion\.nii\.gz is not a readable NIfTI"


@case
def image_4d(root):
    save_nifti(np.zeros((*SHAPE, 3), np.float32), AFFINE, root / "data" / "h00_t1.nii.gz")
    return _load(root), r"h00_t1\.nii\.gz is 4D .*one file per channel"


@case
def image_2d(root):
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.zeros(SHAPE[:2], np.float32), AFFINE), str(root / "data" / "h01_t1.nii.gz"))
    return _load(root), r"h01_t1\.nii\.gz is 2D"


@case
def nan_intensities(root):
    data = np.ones(SHAPE, np.float32)
    data[2, 2, 2] = np.nan
    save_nifti(data, AFFINE, root / "data" / "p05_t1.nii.gz")
    return _load(root), r"p05_t1\.nii\.gz has 1 NaN/Inf voxels; replace them"


@case
def inf_intensities(root):
    data = np.ones(SHAPE, np.float32)
    data[0, 0, :3] = np.inf
    save_nifti(data, AFFINE, root / "data" / "p05_b1000.nii.gz")
    return _load(root), r"p05_b1000\.nii\.gz has 3 NaN/Inf"


@case
def channels_on_different_grids(root):
    save_nifti(np.ones((12, 10, 7), np.float32), np.diag([2, 2, 6, 1.0]), root / "data" / "p02_b1000.nii.gz")
    return _load(root), r"b1000 .*p02_b1000\.nii\.gz shape \(12, 10, 7\) ≠ T1 .* resample .*sapkit prepare"


@case
def label_on_different_grid(root):
    shifted = AFFINE.copy()
    shifted[0, 3] = 5.0  # origin 5 mm away
    save_nifti(np.zeros(SHAPE, np.int16), shifted, root / "data" / "h00_skel.nii.gz")
    return _load(root), r"skeleton_label .*h00_skel\.nii\.gz affine differs from T1 .* by 5 mm"


@case
def affine_differs_by_a_flip(root):
    save_nifti(np.ones(SHAPE, np.float32), np.diag([-2.0, 2.0, 3.0, 1.0]), root / "data" / "p03_b1000.nii.gz")
    return _load(root), r"p03_b1000\.nii\.gz affine differs .*LAS.*RAS.*sapkit prepare"


@case
def non_integer_labels(root):
    save_nifti(np.full(SHAPE, 0.25, np.float32), AFFINE, root / "data" / "p04_lesion.nii.gz")
    return _load(root), r"p04_lesion\.nii\.gz holds non-integer values.*nearest-neighbour"


@case
def label_values_outside_the_map(root):
    data = np.zeros(SHAPE, np.int16)
    data[1, 1, 1] = 42
    save_nifti(data, AFFINE, root / "data" / "h01_skel.nii.gz")
    return _load(root), r"h01_skel\.nii\.gz contains label values \[42\] not in the declared map.*manifest\.yaml"


@case
def lesion_mask_with_value_two(root):
    data = np.zeros(SHAPE, np.uint8)
    data[1, 1, 1] = 2
    save_nifti(data, AFFINE, root / "data" / "p02_lesion.nii.gz")
    return _load(root), r"p02_lesion\.nii\.gz contains label values \[2\]"


@case
def duplicate_scan_ids(root):
    t = _table(root)
    t.loc[3, "scan_id"] = t.loc[2, "scan_id"]
    _write_table(root, t)
    return _load(root), r"duplicate scan_id\(s\) \['p02_s0'\]; every scan needs a unique id"


@case
def subject_in_two_folds(root):
    t = _table(root)
    t["fold"] = ["", "", "0", "1", "0", "1"]
    t.loc[3, "subject_id"] = "p02"
    _write_table(root, t)
    return _load(root), r"subject p02 appears in several folds"


@case
def empty_manifest(root):
    _write_table(root, _table(root).iloc[0:0])
    return _load(root), r"(?s)manifest .*manifest\.csv has 1 problem.*no rows; add one row per scan"


@case
def missing_column(root):
    _write_table(root, _table(root).drop(columns=["b1000"]))
    return _load(root), r"missing column\(s\) \['b1000'\]"


@case
def wrong_channel_order_declared(root):
    meta = yaml.safe_load((root / "data" / "manifest.yaml").read_text())
    meta["channels"] = ["b1000", "t1"]
    (root / "data" / "manifest.yaml").write_text(yaml.safe_dump(meta))
    return _load(root), r"manifest\.yaml: channels \['b1000', 't1'\] ≠ \['t1', 'b1000'\].*reorder"


@case
def path_escaping_data_root(root):
    t = _table(root)
    t.loc[0, "b1000"] = "../outside.nii.gz"
    _write_table(root, t)
    return _load(root), r"h00_s0: b1000 path '\.\./outside\.nii\.gz' leaves data_root"


@case
def absolute_path(root):
    t = _table(root)
    t.loc[1, "t1"] = "/etc/hosts"
    _write_table(root, t)
    return _load(root), r"h01_s0: t1 path '/etc/hosts' leaves data_root.*relative"


@case
def unknown_cohort(root):
    t = _table(root)
    t.loc[0, "cohort"] = "control"
    _write_table(root, t)
    return _load(root), r"h00_s0: cohort 'control' must be 'healthy' or 'patient'"


@case
def healthy_without_skeleton(root):
    t = _table(root)
    t.loc[0, "skeleton_label"] = ""
    _write_table(root, t)
    return _load(root), r"h00_s0: healthy scan without skeleton_label; label it"


@case
def manifest_not_yaml(root):
    (root / "data" / "manifest.yaml").write_text("name: [unclosed\n")
    return _load(root), r"manifest\.yaml is not valid YAML"


@case
def manifest_names_missing_csv(root):
    meta = yaml.safe_load((root / "data" / "manifest.yaml").read_text())
    meta["csv"] = "scans.csv"
    (root / "data" / "manifest.yaml").write_text(yaml.safe_dump(meta))
    return _load(root), r"names csv .*scans\.csv, which does not exist; fix the 'csv' key"


@case
def no_manifest_at_all(root):
    from sapkit.manifest import load_manifest

    return (lambda: load_manifest(root / "nowhere")), r"no manifest at .*nowhere.*sapkit synth"


# ---------------------------------------------------------------- parameters
@case
def unknown_profile_key(root):
    from sapkit.config import load_config

    return (lambda: load_config("smoke", {"lesion.lr": 1})), r"unknown config key 'lesion\.lr'; valid keys here"


@case
def unknown_profile(root):
    from sapkit.config import load_config

    return (lambda: load_config("tiny")), r"unknown profile 'tiny'; use one of smoke, demo, paper"


@case
def wrong_type_override(root):
    from sapkit.config import load_config

    return (lambda: load_config("smoke", {"infer.overlap": "half"})), r"'infer\.overlap' must be a number"


@case
def unknown_connectivity_in_config(root):
    from sapkit.config import load_config

    return (lambda: load_config("smoke", {"eval.connectivity": 4})), r"'eval\.connectivity' must be one of \(6, 18, 26\)"


@case
def too_many_folds(root):
    from sapkit.manifest import load_manifest
    from sapkit.splits import splits_from_manifest

    m = load_manifest(root / "data")
    return (lambda: splits_from_manifest(m, k=7, tuning_fold=6)), r"4 patient subjects cannot fill 7 folds; lower splits\.k"


@case
def tuning_fold_out_of_range(root):
    from sapkit.splits import make_splits

    return (lambda: make_splits({"a": 1, "b": 2}, k=2, tuning_fold=2)), r"splits\.tuning_fold must be in \[0, 1\], got 2"


@case
def bad_percentiles(root):
    from sapkit.preprocess import scale_intensity

    return (lambda: scale_intensity(np.zeros((2, 4, 4, 4)), percentiles=(99, 1))), r"percentiles must satisfy 0 <= low < high <= 100"


@case
def prepare_into_the_input_folder(root):
    from sapkit.prepare import prepare_manifest

    return (lambda: prepare_manifest(root / "data", root / "data")), r"is the input data folder; choose a new folder"


@case
def negative_target_spacing(root):
    from sapkit.prepare import prepare_manifest

    return (lambda: prepare_manifest(root / "data", root / "out", spacing_mm=(1, -1, 1))), r"target spacing must be three positive values in mm"


@case
def splits_file_corrupt(root):
    from sapkit.splits import load_splits

    (root / "splits.json").write_text("{not json")
    return (lambda: load_splits(root)), r"splits\.json is not valid JSON.*sapkit split"


@case
def unknown_fold_requested(root):
    from sapkit.finetune import resolve_folds
    from sapkit.splits import make_splits

    s = make_splits({f"p{i}": i for i in range(6)}, k=3, tuning_fold=2)
    return (lambda: resolve_folds(s, ["5"])), r"lesion\.folds entry '5' is not a test fold"


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_catalogue_is_large_enough():
    assert len(CASES) >= 30, len(CASES)


@pytest.mark.parametrize("make_case", CASES, ids=lambda f: f.__name__)
def test_bad_input_raises_clear_error_and_leaves_inputs_untouched(tmp_path, make_case):
    write_tiny_cohort(tmp_path / "data")
    call, message = make_case(tmp_path)
    before = _digests(tmp_path)
    with pytest.raises(SapkitError, match=message):
        call()
    assert _digests(tmp_path) == before
