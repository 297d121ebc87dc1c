"""Malformed inputs for ``sapkit train``: weight transfer from checkpoints that do not fit or hold pickled
code, samplers without lesions, unknown inits, run folders and profiles it cannot use.

See ``bad_input_catalogue`` for what every case must do.
"""

from __future__ import annotations

import numpy as np

from sapkit.io.nifti import save_nifti

from bad_input_catalogue import catalogue_tests, AFFINE, SHAPE, tiny_model, registry

CASES, CLI_CASES, case, cli_case = registry()


@case
def transfer_from_another_architecture(root):
    import torch

    from sapkit.networks.transfer import transfer_weights

    other, _ = tiny_model(channels=(4, 8, 16), backbone="dynunet")
    torch.save({"state_dict": other.state_dict(), "epoch": 3}, root / "dynunet.pt")
    model, _ = tiny_model()
    return (lambda: transfer_weights(model, root / "dynunet.pt", init="sap")), \
        r"sap transfer from .*dynunet\.pt loaded no tensor.*check the backbone in the profile"


@case
def checkpoint_with_a_pickled_function(root):
    import os

    import torch

    from sapkit.networks.transfer import transfer_weights

    model, _ = tiny_model()
    torch.save({"state_dict": model.state_dict(), "hook": os.getcwd}, root / "callable.pt")
    return (lambda: transfer_weights(model, root / "callable.pt", init="sap")), \
        r"refused to load checkpoint .*callable\.pt: it holds pickled code or objects \(GLOBAL \w+\.getcwd\)"


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

    model, _ = tiny_model()
    return (lambda: transfer_weights(model, {}, init="scratch")), r"transfer needs init 'sap' or 'ssl', got 'scratch'"


@cli_case
def train_run_dir_is_a_file(root):
    (root / "afile").write_text("x")
    return ["train", "lesion", "--run-dir", str(root / "afile")], r"--run-dir .*afile is a file, not a folder", []


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


def _splits(root, folds=None) -> None:
    import json

    folds = folds or {"0": ["p02", "p03"], "1": ["p04", "p05"]}
    root.mkdir(exist_ok=True)
    (root / "splits.json").write_text(json.dumps({"k": len(folds), "seed": 0, "tuning_fold": 1, "folds": folds,
                                                  "healthy": {"train": ["h00"], "val": ["h01"]}}))


@cli_case
def print_slurm_without_splits(root):  # issue 23: printed a script whose job failed when it started
    return ["train", "lesion", "--print-slurm", "--run-dir", str(root)], \
        r"the job would fail when it starts: no splits at .*splits\.json; run notebook 00 or `sapkit split", \
        [root / "jobs"]


@cli_case
def print_slurm_without_data(root):
    _splits(root / "run")
    return ["train", "skeleton", "--print-slurm", "--run-dir", str(root / "run")], \
        r"the job would fail when it starts: no manifest at .*run/data", [root / "run" / "jobs"]


@cli_case
def print_slurm_unknown_fold(root):
    _splits(root)
    return ["train", "lesion", "--print-slurm", "--run-dir", str(root), "--fold", "7"], \
        r"the job would fail when it starts: fold '7' is not in splits\.json", [root / "jobs"]


@cli_case
def print_slurm_fold_without_patients_in_the_manifest(root):
    _splits(root, {"0": ["q1"], "1": ["q2"]})
    return ["train", "lesion", "--print-slurm", "--run-dir", str(root), "--fold", "0"], \
        r"the job would fail when it starts: ", [root / "jobs"]


(test_bad_input_raises_clear_error_and_leaves_inputs_untouched,
 test_bad_input_on_the_command_line_exits_with_one_message) = catalogue_tests(CASES, CLI_CASES)
