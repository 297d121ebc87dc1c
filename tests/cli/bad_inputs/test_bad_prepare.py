"""Malformed inputs for ``sapkit prepare``: output folders that would overwrite the inputs, bad target spacing,
broken input headers, and a late failure that must remove what was written.

See ``bad_input_catalogue`` for what every case must do.
"""

from __future__ import annotations


from bad_input_catalogue import (
    catalogue_tests, edit_meta, nan_affine_nifti, read_only_folder, read_table, write_table, zero_spacing_nifti, registry,
)

CASES, CLI_CASES, case, cli_case = registry()


@case
def prepare_into_the_input_folder(root):
    from sapkit.data.prepare import prepare_manifest

    return (lambda: prepare_manifest(root / "data", root / "data")), r"is the input data folder .*; choose a new folder"


@case
def negative_target_spacing(root):
    from sapkit.data.prepare import prepare_manifest

    return (lambda: prepare_manifest(root / "data", root / "out", spacing_mm=(1, -1, 1))), r"target spacing must be three positive values in mm"


@case
def prepare_out_is_the_manifest_folder(root):
    from sapkit.data.prepare import prepare_manifest

    (root / "scans").mkdir()
    for f in (root / "data").glob("*.nii.gz"):
        f.rename(root / "scans" / f.name)
    edit_meta(root, data_root="../scans")
    return (lambda: prepare_manifest(root / "data", root / "data")), r"--out .*data is the input data folder"


@case
def prepare_outputs_named_like_inputs(root):
    from sapkit.data.prepare import prepare_manifest

    t = read_table(root)
    (root / "data" / "images").mkdir()
    for i, row in t.iterrows():
        for col in ("t1", "b1000", "skeleton_label", "lesion_label"):
            if row[col]:  # the images sit in data/images under the names prepare gives its outputs
                new = f"{row['scan_id']}_{col}.nii.gz"
                (root / "data" / row[col]).rename(root / "data" / "images" / new)
                t.loc[i, col] = f"images/{new}"
    write_table(root, t)
    return (lambda: prepare_manifest(root / "data", root / "data" / "images")), \
        r"--out .*images would overwrite input file\(s\) .*h00_s0_t1\.nii\.gz.* named by the manifest"


@cli_case
def prepare_zero_voxel_spacing(root):
    zero_spacing_nifti(root / "data" / "p05_lesion.nii.gz")
    return ["prepare", str(root / "data"), "--out", str(root / "prep")], \
        r"p05_lesion\.nii\.gz has an invalid geometry", [root / "prep" / "manifest.yaml", root / "prep" / "h00_s0_t1.nii.gz"]


@cli_case
def prepare_nan_affine_in_b1000(root):
    nan_affine_nifti(root / "data" / "p05_b1000.nii.gz")
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
def prepare_out_is_a_file(root):
    (root / "afile").write_text("x")
    return ["prepare", str(root / "data"), "--out", str(root / "afile")], r"--out .*afile is a file, not a folder", []


@cli_case
def prepare_out_in_a_read_only_folder(root):
    ro = read_only_folder(root)
    return ["prepare", str(root / "data"), "--out", str(ro / "prep")], r"--out .*prep cannot be created", []


(test_bad_input_raises_clear_error_and_leaves_inputs_untouched,
 test_bad_input_on_the_command_line_exits_with_one_message) = catalogue_tests(CASES, CLI_CASES)
