"""Malformed inputs for ``sapkit split``: folds the cohort cannot fill, corrupt splits files, unknown folds,
run folders it cannot write, bad overrides.

See ``bad_input_catalogue`` for what every case must do.
"""

from __future__ import annotations


from bad_input_catalogue import catalogue_tests, read_only_folder, registry

CASES, CLI_CASES, case, cli_case = registry()


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


@cli_case
def split_run_dir_is_a_file(root):
    (root / "afile").write_text("x")
    return ["split", str(root / "data"), "--run-dir", str(root / "afile")], \
        r"--run-dir .*afile is a file, not a folder", []


@cli_case
def split_run_dir_read_only(root):
    ro = read_only_folder(root)
    return ["split", str(root / "data"), "--run-dir", str(ro)], r"--run-dir .* is not writable \(read-only\?\)", []


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


(test_bad_input_raises_clear_error_and_leaves_inputs_untouched,
 test_bad_input_on_the_command_line_exits_with_one_message) = catalogue_tests(CASES, CLI_CASES)
