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
from sapkit.io.nifti import save_nifti

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
    from sapkit.data.manifest import load_manifest

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
def empty_lesion_mask_in_a_patient(root):
    save_nifti(np.zeros(SHAPE, np.uint8), AFFINE, root / "data" / "p03_lesion.nii.gz")
    return _load(root), r"p03_s0: lesion_label .*p03_lesion\.nii\.gz is empty \(no voxel > 0\).*check that the right file"


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
    from sapkit.data.manifest import load_manifest

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
    from sapkit.data.manifest import load_manifest
    from sapkit.data.splits import splits_from_manifest

    m = load_manifest(root / "data")
    return (lambda: splits_from_manifest(m, k=7, tuning_fold=6)), r"4 patient subjects cannot fill 7 folds; lower splits\.k"


@case
def tuning_fold_out_of_range(root):
    from sapkit.data.splits import make_splits

    return (lambda: make_splits({"a": 1, "b": 2}, k=2, tuning_fold=2)), r"splits\.tuning_fold must be in \[0, 1\], got 2"


@case
def bad_percentiles(root):
    from sapkit.data.intensity import scale_intensity

    return (lambda: scale_intensity(np.zeros((2, 4, 4, 4)), percentiles=(99, 1))), r"percentiles must satisfy 0 <= low < high <= 100"


@case
def prepare_into_the_input_folder(root):
    from sapkit.data.prepare import prepare_manifest

    return (lambda: prepare_manifest(root / "data", root / "data")), r"is the input data folder; choose a new folder"


@case
def negative_target_spacing(root):
    from sapkit.data.prepare import prepare_manifest

    return (lambda: prepare_manifest(root / "data", root / "out", spacing_mm=(1, -1, 1))), r"target spacing must be three positive values in mm"


@case
def splits_file_corrupt(root):
    from sapkit.data.splits import load_splits

    (root / "splits.json").write_text("{not json")
    return (lambda: load_splits(root)), r"splits\.json is not valid JSON.*sapkit split"


@case
def unknown_fold_requested(root):
    from sapkit.training.cross_validation import resolve_folds
    from sapkit.data.splits import make_splits

    s = make_splits({f"p{i}": i for i in range(6)}, k=3, tuning_fold=2)
    return (lambda: resolve_folds(s, ["5"])), r"lesion\.folds entry '5' is not a test fold"


# ---------------------------------------------------------------- metrics (sapkit.metrics)
def _masks():
    gt = np.zeros(SHAPE, np.uint8)
    gt[2:5, 2:5, 2:5] = 1
    return gt, gt.copy()


@case
def negative_tolerance_lesion_report(root):
    from sapkit.metrics import lesion_report

    gt, pred = _masks()
    return (lambda: lesion_report(gt, pred, spacing_mm=(2, 2, 3), tolerance_mm=-1.0)), r"tolerance_mm must be a finite number ≥ 0, got -1\.0"


@case
def negative_tolerance_nsd(root):
    from sapkit.metrics import normalized_surface_dice

    gt, pred = _masks()
    return (lambda: normalized_surface_dice(gt, pred, spacing_mm=(2, 2, 3), tolerance_mm=-2)), \
        r"tolerance_mm must be a finite number ≥ 0, got -2"


@case
def nan_tolerance_nsd(root):
    from sapkit.metrics import normalized_surface_dice

    gt, pred = _masks()
    return (lambda: normalized_surface_dice(gt, pred, spacing_mm=(2, 2, 3), tolerance_mm=float("nan"))), \
        r"tolerance_mm must be a finite number ≥ 0, got nan"


@case
def unknown_connectivity_lesion_report(root):
    from sapkit.metrics import lesion_report

    gt, pred = _masks()
    return (lambda: lesion_report(gt, pred, spacing_mm=(2, 2, 3), connectivity=4)), \
        r"connectivity must be one of \(6, 18, 26\) \(3D voxel neighbourhood\), got 4; the kit's default is 26"


@case
def unknown_hit_rule(root):
    from sapkit.metrics import lesion_report

    gt, pred = _masks()
    return (lambda: lesion_report(gt, pred, spacing_mm=(2, 2, 3), hit="dice:0.5")), \
        r"hit rule must be 'any' or 'iou:T' .*e\.g\. 'iou:0\.5'\), got 'dice:0\.5'"


@case
def masks_of_different_shape_lesion_report(root):
    from sapkit.metrics import lesion_report

    gt, _ = _masks()
    return (lambda: lesion_report(gt, gt[:, :, :-1], spacing_mm=(2, 2, 3))), \
        r"prediction shape \(12, 10, 13\) ≠ gt_mask shape \(12, 10, 14\); resample the prediction onto the GT grid"


@case
def masks_of_different_shape_nsd(root):
    from sapkit.metrics import normalized_surface_dice

    gt, _ = _masks()
    return (lambda: normalized_surface_dice(gt, gt[:-2], spacing_mm=(2, 2, 3))), \
        r"gt shape \(12, 10, 14\) ≠ pred shape \(10, 10, 14\).*resample the prediction onto the ground-truth grid"


@case
def spacing_of_wrong_length_lesion_report(root):
    from sapkit.metrics import lesion_report

    gt, pred = _masks()
    return (lambda: lesion_report(gt, pred, spacing_mm=(2, 2))), \
        r"spacing_mm must be 3 positive numbers \(mm\), got \(2, 2\); pass the scan's voxel size"


@case
def spacing_of_wrong_length_nsd(root):
    from sapkit.metrics import normalized_surface_dice

    gt, pred = _masks()
    return (lambda: normalized_surface_dice(gt, pred, spacing_mm=(2, 2, 3, 1))), \
        r"spacing_mm must be 3 positive numbers \(mm\), got \(2, 2, 3, 1\); pass the scan's voxel size"


@case
def probability_map_above_one(root):
    from sapkit.metrics import lesion_report

    gt, _ = _masks()
    logits = np.where(gt > 0, 3.5, -2.0).astype(np.float32)
    return (lambda: lesion_report(gt, prob_map=logits, threshold=0.5, spacing_mm=(2, 2, 3))), \
        r"prob_map must hold probabilities in \[0, 1\]; found \d+ voxel\(s\) outside.*apply softmax/sigmoid"


@case
def probability_map_with_nan(root):
    from sapkit.metrics import lesion_report

    gt, _ = _masks()
    prob = np.zeros(SHAPE, np.float32)
    prob[7, 7, 7] = np.nan
    return (lambda: lesion_report(gt, prob_map=prob, threshold=0.5, spacing_mm=(2, 2, 3))), \
        r"prob_map must hold probabilities in \[0, 1\]; found 1 voxel\(s\) outside, e\.g\. nan"


# ---------------------------------------------------------------- sapkit evaluate (NIfTI files on disk)
def _cli(name: str, argv: list[str]):
    """``sapkit <name> argv`` up to the command's ``run`` (which raises; ``main`` would print and exit 1)."""
    import argparse
    import importlib

    from sapkit.cli import COMMANDS

    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"sapkit {name}")
    module.add_arguments(parser)
    args = parser.parse_args(argv)
    return lambda: module.run(args)


@case
def evaluate_prediction_on_another_grid(root):
    pred = root / "pred_mask.nii.gz"
    save_nifti(np.zeros((12, 10, 7), np.uint8), np.diag([2.0, 2.0, 6.0, 1.0]), pred)
    return _cli("evaluate", ["--gt", str(root / "data" / "p03_lesion.nii.gz"), "--pred", str(pred),
                             "--json", str(root / "out.json")]), \
        r"prediction .*pred_mask\.nii\.gz shape \(12, 10, 7\) ≠ GT .*p03_lesion\.nii\.gz shape \(12, 10, 14\); resample"


@case
def evaluate_prediction_shifted(root):
    shifted = AFFINE.copy()
    shifted[2, 3] = -9.0  # same shape, origin 9 mm lower
    pred = root / "shifted_prob.nii.gz"
    save_nifti(np.zeros(SHAPE, np.float32), shifted, pred)
    return _cli("evaluate", ["--gt", str(root / "data" / "p03_lesion.nii.gz"), "--pred", str(pred), "--prob"]), \
        r"prediction .*shifted_prob\.nii\.gz affine differs from GT .*p03_lesion\.nii\.gz affine by 9 mm.*resample"


@case
def evaluate_probability_map_of_logits(root):
    prob = np.full(SHAPE, -3.0, np.float32)
    prob[2:5, 2:5, 2:5] = 4.0
    path = root / "logits_prob.nii.gz"
    save_nifti(prob, AFFINE, path)
    return _cli("evaluate", ["--gt", str(root / "data" / "p03_lesion.nii.gz"), "--pred", str(path), "--prob"]), \
        r"probability map .*logits_prob\.nii\.gz holds 1680 voxel\(s\) outside \[0, 1\].*softmax/sigmoid probabilities"


@case
def evaluate_probability_map_with_nan(root):
    prob = np.zeros(SHAPE, np.float32)
    prob[1, 1, 1] = np.nan
    path = root / "nan_prob.nii.gz"
    save_nifti(prob, AFFINE, path)
    return _cli("evaluate", ["--gt", str(root / "data" / "p03_lesion.nii.gz"), "--pred", str(path), "--prob"]), \
        r"probability map .*nan_prob\.nii\.gz holds 1 voxel\(s\) outside \[0, 1\] or NaN"


@case
def evaluate_unknown_tolerance(root):
    pred = root / "data" / "p03_lesion.nii.gz"
    return _cli("evaluate", ["--gt", str(pred), "--pred", str(pred), "--tolerance-mm", "-0.5"]), \
        r"tolerance_mm must be a finite number ≥ 0, got -0\.5"


# ---------------------------------------------------------------- checkpoints, models, transfer
class _Custom:
    """Pickled by reference (``test_bad_inputs._Custom``): a custom class inside a checkpoint."""

    def __init__(self) -> None:
        self.note = "not a tensor"


def _tiny_model(out_channels: int = 2, channels=(4, 8), backbone: str = "unet"):
    import dataclasses

    from sapkit.config import load_config
    from sapkit.networks.factory import build_model

    mc = dataclasses.replace(load_config("smoke").model, channels=tuple(channels), backbone=backbone)
    return build_model(mc, out_channels, seed=0), mc


@case
def checkpoint_of_another_architecture(root):
    import torch

    from sapkit.inference.predict import load_model

    other, _ = _tiny_model(channels=(4, 8, 16))
    torch.save(other.state_dict(), root / "other_arch.pt")  # bare state dict: no config inside
    _, mc = _tiny_model()
    return (lambda: load_model(root / "other_arch.pt", mc)), \
        r"checkpoint .*other_arch\.pt does not fit a unet with 2 outputs .*check model\.\* settings"


@case
def checkpoint_of_another_task(root):
    from sapkit.io.checkpoints import save_checkpoint
    from sapkit.config import config_to_dict, load_config
    from sapkit.inference.predict import load_model

    skeleton, mc = _tiny_model(out_channels=10)
    cfg = config_to_dict(load_config("smoke", {"model.channels": [4, 8]}))
    save_checkpoint(root / "skeleton_final.pt", state_dict=skeleton.state_dict(), epoch=1, config=cfg)
    return (lambda: load_model(root / "skeleton_final.pt", mc, out_channels=2)), \
        r"skeleton_final\.pt does not fit a unet with 2 outputs .*the checkpoint's task"


@case
def transfer_from_another_architecture(root):
    import torch

    from sapkit.networks.transfer import transfer_weights

    other, _ = _tiny_model(channels=(4, 8, 16), backbone="dynunet")
    torch.save({"state_dict": other.state_dict(), "epoch": 3}, root / "dynunet.pt")
    model, _ = _tiny_model()
    return (lambda: transfer_weights(model, root / "dynunet.pt", init="sap")), \
        r"sap transfer from .*dynunet\.pt loaded no tensor.*check the backbone in the profile"


@case
def checkpoint_with_a_custom_class(root):
    import torch

    from sapkit.inference.predict import load_model

    model, mc = _tiny_model()
    torch.save({"state_dict": model.state_dict(), "meta": _Custom()}, root / "custom_class.pt")
    return (lambda: load_model(root / "custom_class.pt", mc)), \
        r"refused to load checkpoint .*custom_class\.pt: it holds pickled code or objects \(GLOBAL .*_Custom\).*re-save only its state_dict"


@case
def checkpoint_with_a_pickled_function(root):
    import os

    import torch

    from sapkit.networks.transfer import transfer_weights

    model, _ = _tiny_model()
    torch.save({"state_dict": model.state_dict(), "hook": os.getcwd}, root / "callable.pt")
    return (lambda: transfer_weights(model, root / "callable.pt", init="sap")), \
        r"refused to load checkpoint .*callable\.pt: it holds pickled code or objects \(GLOBAL \w+\.getcwd\)"


@case
def checkpoint_not_a_torch_file(root):
    from sapkit.inference.predict import load_model

    (root / "model.pt").write_text("hello, this is a text file")
    _, mc = _tiny_model()
    return (lambda: load_model(root / "model.pt", mc)), \
        r"checkpoint .*model\.pt: it is not a readable torch checkpoint .*check the path, or re-save it"


@case
def checkpoint_is_a_nifti(root):
    from sapkit.io.checkpoints import load_checkpoint

    return (lambda: load_checkpoint(root / "data" / "p02_t1.nii.gz")), \
        r"p02_t1\.nii\.gz: it is not a readable torch checkpoint"


@case
def checkpoint_truncated(root):
    from sapkit.io.checkpoints import load_checkpoint, save_checkpoint

    model, _ = _tiny_model()
    save_checkpoint(root / "cut.pt", state_dict=model.state_dict(), epoch=1)
    data = (root / "cut.pt").read_bytes()
    (root / "cut.pt").write_bytes(data[: len(data) // 2])
    return (lambda: load_checkpoint(root / "cut.pt")), r"cut\.pt: it is not a readable torch checkpoint.*truncated"


# ---------------------------------------------------------------- training and inference parameters
@case
def sampler_given_only_empty_lesion_masks(root):
    from sapkit.data.cases import load_cases
    from sapkit.data.manifest import load_manifest
    from sapkit.training.lesion_sampler import InstanceBalancedSampler

    for i in range(2, 6):
        save_nifti(np.zeros(SHAPE, np.uint8), AFFINE, root / "data" / f"p{i:02d}_lesion.nii.gz")
    cases = load_cases(load_manifest(root / "data", check_files=False), cohort="patient")
    return (lambda: InstanceBalancedSampler(cases, roi=(8, 8, 8))), \
        r"no lesion voxel in any of the 4 cases.*check the lesion_label column of the manifest"


@case
def unknown_init(root):
    from sapkit.config import load_config
    from sapkit.training.lesion_task import train_lesion

    smoke = load_config("smoke")
    return (lambda: train_lesion(root / "run", smoke, init="imagenet", fold=0, train_cases=[], val_cases=None,
                                 sampler=None)), r"init must be one of \('scratch', 'ssl', 'sap'\), got 'imagenet'"


@case
def transfer_with_init_scratch(root):
    from sapkit.networks.transfer import transfer_weights

    model, _ = _tiny_model()
    return (lambda: transfer_weights(model, {}, init="scratch")), r"transfer needs init 'sap' or 'ssl', got 'scratch'"


@case
def training_roi_not_divisible(root):
    from sapkit.config import load_config
    from sapkit.training.lesion_task import train_lesion

    cfg = load_config("smoke", {"lesion.roi": [20, 20, 20]})
    return (lambda: train_lesion(root / "run", cfg, init="scratch", fold=0, train_cases=[], val_cases=None,
                                 sampler=None)), \
        r"lesion\.roi \[20, 20, 20\] must be divisible by 8 for the unet backbone; use e\.g\. \[16, 16, 16\]"


@case
def inference_roi_not_divisible(root):
    from sapkit.inference.sliding_window import predict_probabilities

    model, _ = _tiny_model(channels=(4, 8, 16))
    image = np.zeros((2, *SHAPE), np.float32)
    return (lambda: predict_probabilities(model, image, roi=(10, 10, 10), overlap=0.25)), \
        r"infer\.roi \[10, 10, 10\] must be divisible by 4 for the unet backbone; use e\.g\. \[8, 8, 8\]"


# ---------------------------------------------------------------- sweep grids, reproduce
@case
def sweep_grid_not_yaml(root):
    from sapkit.pipeline.sweep import load_grid

    (root / "grid.yaml").write_text("grid: {seed: [1, 2]\n")
    return (lambda: load_grid(root / "grid.yaml")), r"grid file .*grid\.yaml is not valid YAML .*fix its syntax"


@case
def sweep_grid_value_not_a_list(root):
    from sapkit.pipeline.sweep import load_grid

    (root / "grid.yaml").write_text("profile: smoke\ngrid:\n  seed: 3\n")
    return (lambda: load_grid(root / "grid.yaml")), r"grid file .*grid\.yaml: 'grid' must map override keys to non-empty lists"


@case
def sweep_grid_unknown_key(root):
    from sapkit.pipeline.sweep import load_grid

    (root / "grid.yaml").write_text("profile: smoke\ngrid:\n  lesion.lr: [0.1, 0.01]\n")
    return (lambda: load_grid(root / "grid.yaml")), r"grid file .*grid\.yaml: unknown config key 'lesion\.lr'; valid keys here"


@case
def sweep_grid_is_a_list(root):
    from sapkit.pipeline.sweep import load_grid

    (root / "grid.yaml").write_text("- seed\n- 1\n")
    return (lambda: load_grid(root / "grid.yaml")), r"grid file .*grid\.yaml must be a YAML mapping with keys profile"


@case
def reproduce_unknown_notebook(root):
    return _cli("reproduce", ["--profile", "smoke", "--run-dir", str(root / "run"), "--notebooks", "06_survival"]), \
        r"unknown notebook\(s\) \['06_survival'\]; choose from 00_data, 01_skeleton_labelling"


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
