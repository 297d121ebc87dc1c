"""Malformed inputs for ``sapkit export``: run folders without a configuration or model, checkpoints of another
task or with an invalid stored configuration, thresholds and volumes out of range, scan selections that would
copy every scan or none, and ``--out`` folders it must not replace (issue 23).

See ``bad_input_catalogue`` for what every case must do (the CLI cases also check that no bundle and no
staging folder appear).
"""

from __future__ import annotations

import json


from bad_input_catalogue import catalogue_tests, tiny_model, registry

CASES, CLI_CASES, case, cli_case = registry()


def _run(root, *, config: bool = True, task: str = "lesion", stored_model: dict | None = None):
    """``root/run``: config.yaml, a lesion checkpoint of a tiny UNet, splits.json; the cohort is ``root/data``."""
    from sapkit.config import config_to_dict, load_config
    from sapkit.io.checkpoints import save_checkpoint
    from sapkit.io.run_paths import RunDir
    from sapkit.io.run_record import prepare_run_dir

    cfg = load_config("smoke", {"model.channels": [4, 8], "infer.roi": [16, 16, 16]})
    rd = prepare_run_dir(root / "run", cfg) if config else RunDir(root / "run")
    model, _ = tiny_model()
    stored = config_to_dict(cfg)
    if stored_model is not None:
        stored["model"].update(stored_model)
    save_checkpoint(rd.lesion("sap", 0).model("final"), state_dict=model.state_dict(), epoch=1, config=stored,
                    extra={"task": task})
    rd.splits_json.write_text(json.dumps({"k": 2, "seed": 0, "tuning_fold": 1, "healthy": {"train": [], "val": []},
                                          "folds": {"0": ["p02", "p03"], "1": ["p04", "p05", "h00", "h01"]}}))
    return rd.path


def _export(root, *extra, out=None):
    out = root / "bundle" if out is None else out
    argv = ["export", str(root / "run"), "--init", "sap", "--fold", "0", "--out", str(out), *extra]
    return argv, [out, out.parent / f".{out.name}.sapkit-export"]


@cli_case
def export_without_config_yaml(root):
    _run(root, config=False)
    argv, outputs = _export(root)
    return argv, r"config\.yaml does not exist; export from a run folder .*`sapkit train`", outputs


@cli_case
def export_of_a_fold_never_trained(root):
    _run(root)
    argv, outputs = _export(root)
    argv[argv.index("--fold") + 1] = "1"
    return argv, r"fold_1.*model_final\.pt does not exist; train it first", outputs


@cli_case
def export_of_a_skeleton_checkpoint(root):
    _run(root, task="skeleton")
    argv, outputs = _export(root)
    return argv, r"model_final\.pt is a 'skeleton' checkpoint, not a lesion model", outputs


@cli_case
def export_with_an_invalid_stored_model_config(root):  # issue 23: TypeError in networks/factory.py
    _run(root, stored_model={"channels": "abc"})
    argv, outputs = _export(root)
    return argv, r"model_final\.pt stores a model configuration sapkit cannot build \(config key 'model\.channels'", \
        outputs


@cli_case
def export_threshold_above_one(root):
    _run(root)
    argv, outputs = _export(root, "--threshold", "1.5")
    return argv, r"--threshold must be in \(0, 1\], got 1\.5", outputs


@cli_case
def export_threshold_zero(root):
    _run(root)
    argv, outputs = _export(root, "--threshold", "0")
    return argv, r"--threshold must be in \(0, 1\], got 0\.0", outputs


@cli_case
def export_negative_min_volume(root):
    _run(root)
    argv, outputs = _export(root, "--min-volume-ml", "-1")
    return argv, r"--min-volume-ml must be >= 0 mL, got -1\.0", outputs


@cli_case
def export_inputs_without_scans(root):  # issue 23: copied every scan of the manifest
    _run(root)
    argv, outputs = _export(root, "--inputs", str(root / "data"))
    return argv, r"name the scans of .*manifest\.csv to copy into the bundle: --scans ID \[ID \.\.\.\], or --scans " \
                 r"held-out", outputs


@cli_case
def export_unknown_scan(root):
    _run(root)
    argv, outputs = _export(root, "--inputs", str(root / "data"), "--scans", "p02_s0", "nobody")
    return argv, r"--scans \['nobody'\] are not scan ids of .*manifest\.csv", outputs


@cli_case
def export_scans_without_inputs(root):
    _run(root)
    argv, outputs = _export(root, "--scans", "p02_s0")
    return argv, r"--scans chooses scans of --inputs MANIFEST; add --inputs, or drop --scans", outputs


@cli_case
def export_held_out_of_another_cohort(root):
    import pandas as pd

    _run(root)
    table = pd.read_csv(root / "data" / "manifest.csv", dtype=str, keep_default_na=False)
    table["subject_id"] = [f"x{i}" for i in range(len(table))]  # nobody of the run's folds
    table.to_csv(root / "data" / "manifest.csv", index=False)
    argv, outputs = _export(root, "--inputs", str(root / "data"), "--scans", "held-out")
    return argv, r"no scan of .*manifest\.csv belongs to fold 0's held-out subjects \['p02', 'p03'\]", outputs


@cli_case
def export_onto_a_folder_with_results(root):
    _run(root)
    (root / "mine" / "eval").mkdir(parents=True)
    (root / "mine" / "eval" / "p02_prob.nii.gz").write_bytes(b"an earlier result")
    argv, _ = _export(root, out=root / "mine")
    return argv, r"--out .*mine holds 1 file\(s\) that are not part of a sapkit bundle \(\['eval/p02_prob\.nii\.gz'\]\)", \
        [root / ".mine.sapkit-export", root / "mine" / "configs"]


@cli_case
def export_onto_a_file(root):
    _run(root)
    (root / "bundle.txt").write_text("not a folder")
    argv, _ = _export(root, out=root / "bundle.txt")
    return argv, r"--out .*bundle\.txt is a file; name a folder", [root / ".bundle.txt.sapkit-export"]


(test_bad_input_raises_clear_error_and_leaves_inputs_untouched,
 test_bad_input_on_the_command_line_exits_with_one_message) = catalogue_tests(CASES, CLI_CASES)
