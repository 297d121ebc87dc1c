"""Malformed inputs for ``sapkit fingerprint``: broken headers in the cohort and --json paths it cannot write.

See ``bad_input_catalogue`` for what every case must do.
"""

from __future__ import annotations


from bad_input_catalogue import catalogue_tests, nan_affine_nifti, read_only_folder, zero_spacing_nifti, registry

CASES, CLI_CASES, case, cli_case = registry()


@cli_case
def fingerprint_zero_voxel_spacing(root):
    zero_spacing_nifti(root / "data" / "p02_b1000.nii.gz")
    return ["fingerprint", str(root / "data"), "--json", str(root / "fp.json")], \
        r"p02_b1000\.nii\.gz has an invalid geometry", [root / "fp.json"]


@cli_case
def fingerprint_nan_affine(root):
    nan_affine_nifti(root / "data" / "h01_t1.nii.gz")
    return ["fingerprint", str(root / "data"), "--json", str(root / "fp.json")], \
        r"h01_t1\.nii\.gz has a non-finite affine", [root / "fp.json"]


@cli_case
def fingerprint_json_is_a_directory(root):
    (root / "fp").mkdir()
    return ["fingerprint", str(root / "data"), "--json", str(root / "fp")], r"--json .*fp is a folder", []


@cli_case
def fingerprint_json_inside_a_file(root):
    return ["fingerprint", str(root / "data"), "--json", str(root / "data" / "manifest.csv" / "fp.json")], \
        r"folder of --json .*manifest\.csv is a file, not a folder", []


@cli_case
def fingerprint_json_in_a_read_only_folder(root):
    ro = read_only_folder(root)
    return ["fingerprint", str(root / "data"), "--json", str(ro / "fp.json")], \
        r"folder of --json .* is not writable \(read-only\?\)", []


_, test_bad_input_on_the_command_line_exits_with_one_message = catalogue_tests(CASES, CLI_CASES)
