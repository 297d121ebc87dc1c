"""A catalogue of malformed inputs: each raises one sapkit error naming the file or parameter and
the fix, and leaves every input file byte-identical.

Each case is a function ``case(root) -> (callable, regex)`` where ``root`` holds a valid tiny
cohort (``root/data/manifest.yaml``) that the case may break before the call; the digests of
every file under ``root`` are taken right before the call and compared after it.
"""

from __future__ import annotations

import hashlib
import os
import re
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

    return (lambda: prepare_manifest(root / "data", root / "data")), r"is the input data folder .*; choose a new folder"


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
def evaluate_intensity_image_given_as_mask(root):
    image = np.random.default_rng(0).normal(100.0, 60.0, SHAPE).astype(np.int16)  # an MR image, not a mask
    path = root / "t1_as_mask.nii.gz"
    save_nifti(image, AFFINE, path)
    return _cli("evaluate", ["--gt", str(path), "--pred", str(root / "data" / "p03_lesion.nii.gz")]), \
        r"GT lesion mask file .*t1_as_mask\.nii\.gz holds negative values \(min -\d+\); masks and label maps hold 0"


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

    # refused when the configuration is loaded, not when training builds the network
    return (lambda: load_config("smoke", {"lesion.roi": [20, 20, 20]})), \
        r"lesion\.roi \[20, 20, 20\] must be .*8.* for the unet backbone.*use e\.g\. \[16, 16, 16\]"


@case
def inference_roi_not_divisible(root):
    from sapkit.inference.sliding_window import predict_probabilities

    model, _ = _tiny_model(channels=(4, 8, 16))
    image = np.zeros((2, *SHAPE), np.float32)
    return (lambda: predict_probabilities(model, image, roi=(10, 10, 10), overlap=0.25)), \
        r"infer\.roi \[10, 10, 10\] must be .*4.* for the unet backbone.*use e\.g\. \[8, 8, 8\]"


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


# ---------------------------------------------------------------- issue 14: headers, YAML, output locations
def _raw_nifti(path: Path, data=None, *, zooms=(2.0, 2.0, 3.0), sform=None, s_code=0) -> Path:
    """A NIfTI written header-first (nibabel fills in no codes or affine of its own)."""
    import nibabel as nib

    data = np.ones(SHAPE, np.float32) if data is None else data
    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(data.dtype)
    hdr.set_data_shape(data.shape)
    hdr.set_zooms(zooms)
    if sform is not None:
        hdr.set_sform(sform, code=s_code)
    nib.save(nib.Nifti1Image(data, None, hdr), str(path))
    return path


def _zero_spacing(path: Path) -> Path:
    return _raw_nifti(path, sform=np.diag([2.0, 0.0, 3.0, 1.0]), s_code=1)


def _nan_affine(path: Path, value: float = np.nan) -> Path:
    bad = AFFINE.copy()
    bad[1, 3] = value
    return _raw_nifti(path, sform=bad, s_code=1)


def _edit_meta(root: Path, **changes) -> None:
    meta = yaml.safe_load((root / "data" / "manifest.yaml").read_text())
    meta.update(changes)
    (root / "data" / "manifest.yaml").write_text(yaml.safe_dump(meta))


_BOMB = "\n".join(['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]'] + [
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]" for p, n in zip("abcdefgh", "bcdefghi")]) + "\n"

CLI_CASES = []


def cli_case(fn):
    """``fn(root) -> (argv, regex, outputs)``: ``sapkit argv`` must exit non-zero with one message, no traceback."""
    CLI_CASES.append(fn)
    return fn


@case
def nan_affine_in_b1000(root):
    _nan_affine(root / "data" / "p04_b1000.nii.gz")
    return _load(root), r"p04_s0: b1000 file .*p04_b1000\.nii\.gz has a non-finite affine.*fix the header"


@case
def inf_affine_in_t1(root):
    _nan_affine(root / "data" / "h00_t1.nii.gz", np.inf)
    return _load(root), r"h00_s0: T1 file .*h00_t1\.nii\.gz has a non-finite affine"


@case
def zero_spacing_in_label(root):
    _zero_spacing(root / "data" / "h01_skel.nii.gz")
    return _load(root), r"h01_skel\.nii\.gz has an invalid geometry: voxel spacing \(2, 0, 3\) mm"


@case
def complex_valued_image(root):
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.ones(SHAPE, np.complex64), AFFINE), str(root / "data" / "p02_t1.nii.gz"))
    return _load(root), r"p02_t1\.nii\.gz holds complex-valued voxels \(complex64\).*scalar magnitude image"


@case
def rgb_image(root):
    import nibabel as nib

    rgb = np.zeros(SHAPE, dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    nib.save(nib.Nifti1Image(rgb, AFFINE), str(root / "data" / "p03_b1000.nii.gz"))
    return _load(root), r"p03_b1000\.nii\.gz holds RGB/colour voxels"


@case
def complex_valued_label(root):
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.zeros(SHAPE, np.complex64), AFFINE), str(root / "data" / "p05_lesion.nii.gz"))
    return _load(root), r"p05_lesion\.nii\.gz holds complex-valued voxels"


@case
def symlink_loop(root):
    import os

    (root / "data" / "p02_b1000.nii.gz").unlink()
    os.symlink("loop_b.nii.gz", root / "data" / "loop_a.nii.gz")
    os.symlink("loop_a.nii.gz", root / "data" / "loop_b.nii.gz")
    t = _table(root)
    t.loc[2, "b1000"] = "loop_a.nii.gz"
    _write_table(root, t)
    return _load(root), r"p02_s0: b1000 path 'loop_a\.nii\.gz' is a symbolic-link loop; point it at the real file"


@case
def folder_instead_of_image(root):
    from sapkit.io.nifti import read_image

    (root / "scan.nii.gz").mkdir()
    return (lambda: read_image(root / "scan.nii.gz")), r"scan\.nii\.gz is a folder, not a NIfTI file"


@case
def broken_symlink(root):
    import os

    os.symlink(root / "gone.nii.gz", root / "link.nii.gz")
    from sapkit.io.nifti import read_image

    return (lambda: read_image(root / "link.nii.gz")), r"link\.nii\.gz is a broken symbolic link or a symlink loop"


@case
def channels_not_a_list(root):
    _edit_meta(root, channels="t1, b1000")
    return _load(root), r"manifest\.yaml: channels must be a list of names, got 't1, b1000'; write channels: \[t1, b1000\]"


@case
def channels_a_number(root):
    _edit_meta(root, channels=2)
    return _load(root), r"channels must be a list of names, got 2"


@case
def duplicated_csv_columns(root):
    text = (root / "data" / "manifest.csv").read_text().splitlines()
    text = [line + ("," + line.split(",")[4]) for line in text]
    text[0] = text[0].rsplit(",", 1)[0] + ",t1"
    (root / "data" / "manifest.csv").write_text("\n".join(text) + "\n")
    return _load(root), r"manifest\.csv has duplicated column name\(s\) \['t1'\]; keep one column of each name"


@case
def manifest_yaml_bomb(root):
    (root / "data" / "manifest.yaml").write_text(_BOMB + "csv: manifest.csv\n")
    return _load(root), r"manifest\.yaml expands to more than 100,000 values through aliases"


@case
def manifest_recursive_alias(root):
    (root / "data" / "manifest.yaml").write_text("name: &n [1, *n]\ncsv: manifest.csv\n")
    return _load(root), r"manifest\.yaml has an anchor \(&name\) that contains an alias to itself"


@case
def manifest_python_tag(root):
    (root / "data" / "manifest.yaml").write_text("name: !!python/object/apply:os.getcwd []\n")
    return _load(root), r"manifest\.yaml uses a YAML tag sapkit does not load .*no !!python tags"


@case
def manifest_too_large(root):
    (root / "data" / "manifest.yaml").write_text("description: '" + "x" * 1_100_000 + "'\n")
    return _load(root), r"manifest\.yaml is larger than 1,000,000 bytes"


@case
def manifest_is_a_list(root):
    (root / "data" / "manifest.yaml").write_text("- name\n- csv\n")
    return _load(root), r"manifest\.yaml must hold a mapping"


@case
def profile_yaml_is_a_list(root):
    from sapkit.config import load_config

    (root / "profile.yaml").write_text("- lesion\n- epochs\n")
    return (lambda: load_config(root / "profile.yaml")), r"profile .*profile\.yaml must be a YAML mapping of sections"


@case
def profile_yaml_syntax_error(root):
    from sapkit.config import load_config

    (root / "profile.yaml").write_text("lesion: {epochs: 2\n")
    return (lambda: load_config(root / "profile.yaml")), r"profile .*profile\.yaml is not valid YAML .*fix its syntax"


@case
def profile_yaml_bomb(root):
    from sapkit.config import load_config

    (root / "profile.yaml").write_text(_BOMB)
    return (lambda: load_config(root / "profile.yaml")), r"profile .*profile\.yaml expands to more than 100,000 values"


@case
def profile_nan_learning_rate(root):
    from sapkit.config import load_config

    (root / "profile.yaml").write_text("lesion:\n  lr_scratch: .nan\n")
    return (lambda: load_config(root / "profile.yaml")), r"'lesion\.lr_scratch' must be a finite number, got nan"


@case
def zero_learning_rate(root):
    from sapkit.config import load_config

    return (lambda: load_config("smoke", {"skeleton.lr": 0})), r"'skeleton\.lr' must be in \(0\.0, ∞\), got 0\.0"


@case
def negative_learning_rate(root):
    from sapkit.config import load_config

    return (lambda: load_config("smoke", {"ssl.lr": -1e-4})), r"'ssl\.lr' must be in \(0\.0, ∞\)"


@case
def overlap_of_one(root):
    from sapkit.config import load_config

    return (lambda: load_config("smoke", {"infer.overlap": 1})), r"'infer\.overlap' must be in \[0\.0, 1\.0\), got 1\.0"


@case
def negative_overlap(root):
    from sapkit.config import load_config

    return (lambda: load_config("smoke", {"infer.overlap": -0.25})), r"'infer\.overlap' must be in \[0\.0, 1\.0\)"


@case
def negative_seed(root):
    from sapkit.config import load_config

    return (lambda: load_config("smoke", {"eval.seed": -7})), r"'eval\.seed' must be in \[0, ∞\), got -7"


@case
def override_python_tag(root):
    from sapkit.config import parse_overrides

    return (lambda: parse_overrides(["seed=!!python/object/apply:os.getcwd []"])), \
        r"override 'seed=!!python.*' uses a YAML tag sapkit does not load"


@case
def override_bad_yaml(root):
    from sapkit.config import parse_overrides

    return (lambda: parse_overrides(["lesion.inits=[sap"])), r"override 'lesion\.inits=\[sap' is not valid YAML"


@case
def sweep_grid_bomb(root):
    from sapkit.pipeline.sweep import load_grid

    (root / "grid.yaml").write_text(_BOMB)
    return (lambda: load_grid(root / "grid.yaml")), r"grid file .*grid\.yaml expands to more than 100,000 values"


@case
def prepare_out_is_the_manifest_folder(root):
    from sapkit.data.prepare import prepare_manifest

    (root / "scans").mkdir()
    for f in (root / "data").glob("*.nii.gz"):
        f.rename(root / "scans" / f.name)
    _edit_meta(root, data_root="../scans")
    return (lambda: prepare_manifest(root / "data", root / "data")), r"--out .*data is the input data folder"


@case
def prepare_outputs_named_like_inputs(root):
    from sapkit.data.prepare import prepare_manifest

    t = _table(root)
    (root / "data" / "images").mkdir()
    for i, row in t.iterrows():
        for col in ("t1", "b1000", "skeleton_label", "lesion_label"):
            if row[col]:  # the images sit in data/images under the names prepare gives its outputs
                new = f"{row['scan_id']}_{col}.nii.gz"
                (root / "data" / row[col]).rename(root / "data" / "images" / new)
                t.loc[i, col] = f"images/{new}"
    _write_table(root, t)
    return (lambda: prepare_manifest(root / "data", root / "data" / "images")), \
        r"--out .*images would overwrite input file\(s\) .*h00_s0_t1\.nii\.gz.* named by the manifest"


# ---------------------------------------------------------------- issue 14: the same through the CLI
@cli_case
def check_zero_voxel_spacing(root):
    _zero_spacing(root / "data" / "h00_t1.nii.gz")
    return ["check", str(root / "data")], r"h00_t1\.nii\.gz has an invalid geometry: voxel spacing \(2, 0, 3\) mm", []


@cli_case
def fingerprint_zero_voxel_spacing(root):
    _zero_spacing(root / "data" / "p02_b1000.nii.gz")
    return ["fingerprint", str(root / "data"), "--json", str(root / "fp.json")], \
        r"p02_b1000\.nii\.gz has an invalid geometry", [root / "fp.json"]


@cli_case
def prepare_zero_voxel_spacing(root):
    _zero_spacing(root / "data" / "p05_lesion.nii.gz")
    return ["prepare", str(root / "data"), "--out", str(root / "prep")], \
        r"p05_lesion\.nii\.gz has an invalid geometry", [root / "prep" / "manifest.yaml", root / "prep" / "h00_s0_t1.nii.gz"]


@cli_case
def check_nan_affine(root):
    _nan_affine(root / "data" / "p03_b1000.nii.gz")
    return ["check", str(root / "data")], r"p03_b1000\.nii\.gz has a non-finite affine", []


@cli_case
def fingerprint_nan_affine(root):
    _nan_affine(root / "data" / "h01_t1.nii.gz")
    return ["fingerprint", str(root / "data"), "--json", str(root / "fp.json")], \
        r"h01_t1\.nii\.gz has a non-finite affine", [root / "fp.json"]


@cli_case
def prepare_nan_affine_in_b1000(root):
    _nan_affine(root / "data" / "p05_b1000.nii.gz")
    return ["prepare", str(root / "data"), "--out", str(root / "prep")], \
        r"p05_b1000\.nii\.gz has a non-finite affine", [root / "prep" / "h00_s0_t1.nii.gz", root / "prep" / "manifest.yaml"]


@cli_case
def prepare_late_failure_cleans_up(root):
    path = root / "data" / "p05_b1000.nii.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return ["prepare", str(root / "data"), "--out", str(root / "prep")], \
        r"(?s)p05_b1000\.nii\.gz is not a readable NIfTI.*the \d+ file\(s\) it had written into .*prep were removed", \
        [root / "prep" / "h00_s0_t1.nii.gz", root / "prep" / "manifest.yaml"]


@cli_case
def prepare_out_is_the_data_folder(root):
    return ["prepare", str(root / "data"), "--out", str(root / "data")], r"--out .*data is the input data folder", []


@cli_case
def prepare_out_is_the_manifest_file(root):
    return ["prepare", str(root / "data"), "--out", str(root / "data" / "manifest.yaml")], \
        r"--out .*manifest\.yaml is (the input data folder|an input file)", []


@cli_case
def evaluate_nan_affine_prediction(root):
    pred = _nan_affine(root / "pred.nii.gz")
    return ["evaluate", "--gt", str(root / "data" / "p03_lesion.nii.gz"), "--pred", str(pred),
            "--json", str(root / "e.json")], r"pred\.nii\.gz has a non-finite affine", [root / "e.json"]


@cli_case
def evaluate_zero_spacing_gt(root):
    gt = _zero_spacing(root / "gt.nii.gz")
    return ["evaluate", "--gt", str(gt), "--pred", str(root / "data" / "p03_lesion.nii.gz")], \
        r"gt\.nii\.gz has an invalid geometry", []


@cli_case
def evaluate_html_page_as_probability_map(root):
    page = root / "prob.nii.gz"
    page.write_text("<!DOCTYPE html><html><head><title>404 Not Found</title></head><body>Not Found</body></html>\n")
    return ["evaluate", "--gt", str(root / "data" / "p03_lesion.nii.gz"), "--pred", str(page), "--prob"], \
        r"prob\.nii\.gz is not a readable NIfTI .*re-export", []


@cli_case
def evaluate_html_page_named_nii(root):
    page = root / "prob.nii"
    page.write_text("<html><body>" + "redirect " * 80 + "</body></html>\n")
    return ["evaluate", "--gt", str(root / "data" / "p03_lesion.nii.gz"), "--pred", str(page), "--prob"], \
        r"prob\.nii is not a readable NIfTI", []


@cli_case
def evaluate_json_is_a_directory(root):
    (root / "outdir").mkdir()
    lesion = str(root / "data" / "p03_lesion.nii.gz")
    return ["evaluate", "--gt", lesion, "--pred", lesion, "--json", str(root / "outdir")], \
        r"--json .*outdir is a folder; pass a file path", []


@cli_case
def check_complex_image(root):
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.ones(SHAPE, np.complex128), AFFINE), str(root / "data" / "h01_t1.nii.gz"))
    return ["check", str(root / "data")], r"h01_t1\.nii\.gz holds complex-valued voxels", []


@cli_case
def check_rgb_image(root):
    import nibabel as nib

    rgb = np.zeros(SHAPE, dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    nib.save(nib.Nifti1Image(rgb, AFFINE), str(root / "data" / "h00_t1.nii.gz"))
    return ["check", str(root / "data")], r"h00_t1\.nii\.gz holds RGB/colour voxels", []


@cli_case
def check_yaml_bomb(root):
    (root / "data" / "manifest.yaml").write_text(_BOMB)
    return ["check", str(root / "data")], r"manifest\.yaml expands to more than 100,000 values", []


@cli_case
def check_channels_not_a_list(root):
    _edit_meta(root, channels={"t1": 0})
    return ["check", str(root / "data")], r"channels must be a list of names", []


@cli_case
def fingerprint_json_is_a_directory(root):
    (root / "fp").mkdir()
    return ["fingerprint", str(root / "data"), "--json", str(root / "fp")], r"--json .*fp is a folder", []


@cli_case
def fingerprint_json_inside_a_file(root):
    return ["fingerprint", str(root / "data"), "--json", str(root / "data" / "manifest.csv" / "fp.json")], \
        r"folder of --json .*manifest\.csv is a file, not a folder", []


@cli_case
def split_run_dir_is_a_file(root):
    (root / "afile").write_text("x")
    return ["split", str(root / "data"), "--run-dir", str(root / "afile")], \
        r"--run-dir .*afile is a file, not a folder", []


@cli_case
def train_run_dir_is_a_file(root):
    (root / "afile").write_text("x")
    return ["train", "lesion", "--run-dir", str(root / "afile")], r"--run-dir .*afile is a file, not a folder", []


@cli_case
def reproduce_run_dir_inside_a_file(root):
    (root / "afile").write_text("x")
    return ["reproduce", "--profile", "smoke", "--run-dir", str(root / "afile" / "run")], \
        r"--run-dir .*afile/run lies inside a file", []


@cli_case
def prepare_out_is_a_file(root):
    (root / "afile").write_text("x")
    return ["prepare", str(root / "data"), "--out", str(root / "afile")], r"--out .*afile is a file, not a folder", []


@cli_case
def predict_out_is_a_file(root):
    (root / "afile").write_text("x")
    return ["predict", "--checkpoint", str(root / "m.pt"), "--manifest", str(root / "data"), "--out",
            str(root / "afile")], r"--out .*afile is a file, not a folder", []


def _read_only_folder(root: Path) -> Path:
    """A folder nobody may write into: mode 0555, or sysfs's /sys/kernel for root (who ignores modes)."""
    ro = root / "ro"
    ro.mkdir(exist_ok=True)
    ro.chmod(0o555)
    if not os.access(ro, os.W_OK):
        return ro
    ro.chmod(0o755)
    sysfs = Path("/sys/kernel")
    if not sysfs.is_dir():
        pytest.skip("running as root without sysfs: no folder here refuses writes")
    return sysfs


@cli_case
def split_run_dir_read_only(root):
    ro = _read_only_folder(root)
    return ["split", str(root / "data"), "--run-dir", str(ro)], r"--run-dir .* is not writable \(read-only\?\)", []


@cli_case
def prepare_out_in_a_read_only_folder(root):
    ro = _read_only_folder(root)
    return ["prepare", str(root / "data"), "--out", str(ro / "prep")], r"--out .*prep cannot be created", []


@cli_case
def predict_out_in_a_read_only_folder(root):
    ro = _read_only_folder(root)
    return ["predict", "--checkpoint", str(root / "m.pt"), "--manifest", str(root / "data"), "--out",
            str(ro / "pred")], r"--out .*pred cannot be created", []


@cli_case
def fingerprint_json_in_a_read_only_folder(root):
    ro = _read_only_folder(root)
    return ["fingerprint", str(root / "data"), "--json", str(ro / "fp.json")], \
        r"folder of --json .* is not writable \(read-only\?\)", []


@cli_case
def split_override_bad_yaml(root):
    return ["split", str(root / "data"), "--run-dir", str(root / "run"), "-p", "splits.k=[3"], \
        r"override 'splits\.k=\[3' is not valid YAML", [root / "run" / "splits.json"]


@cli_case
def split_override_python_tag(root):
    return ["split", str(root / "data"), "--run-dir", str(root / "run"), "-p",
            "seed=!!python/object/apply:os.system ['echo hacked']"], r"uses a YAML tag sapkit does not load", \
        [root / "run" / "splits.json"]


@cli_case
def split_negative_seed(root):
    return ["split", str(root / "data"), "--run-dir", str(root / "run"), "-p", "splits.seed=-1"], \
        r"'splits\.seed' must be in \[0, ∞\), got -1", [root / "run" / "splits.json"]


@cli_case
def train_profile_is_a_list(root):
    (root / "p.yaml").write_text("- a\n- b\n")
    return ["train", "lesion", "--profile", str(root / "p.yaml"), "--run-dir", str(root / "run")], \
        r"profile .*p\.yaml must be a YAML mapping", []


@cli_case
def train_profile_syntax_error(root):
    (root / "p.yaml").write_text("lesion:\n  epochs: [2\n")
    return ["train", "lesion", "--profile", str(root / "p.yaml"), "--run-dir", str(root / "run")], \
        r"profile .*p\.yaml is not valid YAML", []


@cli_case
def train_infinite_learning_rate(root):
    return ["train", "lesion", "--run-dir", str(root / "run"), "-p", "lesion.lr_scratch=.inf"], \
        r"'lesion\.lr_scratch' must be a finite number, got inf", []


@cli_case
def reproduce_overlap_of_one(root):
    return ["reproduce", "--profile", "smoke", "--run-dir", str(root / "run"), "-p", "infer.overlap=1.0"], \
        r"'infer\.overlap' must be in \[0\.0, 1\.0\), got 1\.0", [root / "run" / "notebooks"]


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


def _input_digests(root: Path) -> dict[str, str]:
    """Digests of every file except the run folders' lock files (made by the writer lock itself)."""
    return {k: v for k, v in _digests(root).items() if not Path(k).name.startswith(".sapkit.lock")}


def test_catalogue_covers_at_least_a_hundred_kinds_with_the_training_catalogue():
    import test_bad_inputs_training

    assert len(CASES) + len(CLI_CASES) + len(test_bad_inputs_training.CASES) >= 120


@pytest.mark.parametrize("make_case", CLI_CASES, ids=lambda f: f.__name__)
def test_bad_input_on_the_command_line_exits_with_one_message(tmp_path, make_case, capsys):
    from sapkit.cli import main

    write_tiny_cohort(tmp_path / "data")
    argv, message, outputs = make_case(tmp_path)
    before = _input_digests(tmp_path)
    capsys.readouterr()
    code = main(argv)  # an uncaught exception here is the traceback the user would see
    err = capsys.readouterr().err
    assert code != 0
    assert "Traceback" not in err
    assert err.startswith(f"sapkit {argv[0]}: error: ") and re.search(message, err), err
    assert _input_digests(tmp_path) == before
    assert [p for p in outputs if p.exists()] == []
