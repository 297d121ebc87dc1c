"""Malformed inputs for ``sapkit check`` and everything that reads a manifest: the manifest's YAML and CSV, the
NIfTI files it names (missing, unreadable, wrong dimensionality, non-finite values or headers, grids that
disagree, label values).

See ``bad_input_catalogue`` for what every case must do.
"""

from __future__ import annotations

import numpy as np
import yaml

from sapkit.io.nifti import save_nifti

from bad_input_catalogue import (
    catalogue_tests, AFFINE, SHAPE, YAML_BOMB, edit_meta, manifest_loader, nan_affine_nifti, read_table, write_table,
    zero_spacing_nifti, registry,
)

CASES, CLI_CASES, case, cli_case = registry()


@case
def missing_file(root):
    (root / "data" / "p03_t1.nii.gz").unlink()
    return manifest_loader(root), r"p03_s0: T1 file .*p03_t1\.nii\.gz does not exist; check the path"


@case
def truncated_gzip(root):
    path = root / "data" / "p04_b1000.nii.gz"
    path.write_bytes(path.read_bytes()[:200])
    return manifest_loader(root), r"p04_b1000\.nii\.gz is not a readable NIfTI.*re-export"


@case
def not_a_nifti(root):
    (root / "data" / "p02_lesion.nii.gz").write_bytes(b"hello")
    return manifest_loader(root), r"p02_lesion\.nii\.gz is not a readable NIfTI"


@case
def image_4d(root):
    save_nifti(np.zeros((*SHAPE, 3), np.float32), AFFINE, root / "data" / "h00_t1.nii.gz")
    return manifest_loader(root), r"h00_t1\.nii\.gz is 4D .*one file per channel"


@case
def image_2d(root):
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.zeros(SHAPE[:2], np.float32), AFFINE), str(root / "data" / "h01_t1.nii.gz"))
    return manifest_loader(root), r"h01_t1\.nii\.gz is 2D"


@case
def nan_intensities(root):
    data = np.ones(SHAPE, np.float32)
    data[2, 2, 2] = np.nan
    save_nifti(data, AFFINE, root / "data" / "p05_t1.nii.gz")
    return manifest_loader(root), r"p05_t1\.nii\.gz has 1 NaN/Inf voxels; replace them"


@case
def inf_intensities(root):
    data = np.ones(SHAPE, np.float32)
    data[0, 0, :3] = np.inf
    save_nifti(data, AFFINE, root / "data" / "p05_b1000.nii.gz")
    return manifest_loader(root), r"p05_b1000\.nii\.gz has 3 NaN/Inf"


@case
def channels_on_different_grids(root):
    save_nifti(np.ones((12, 10, 7), np.float32), np.diag([2, 2, 6, 1.0]), root / "data" / "p02_b1000.nii.gz")
    return manifest_loader(root), r"b1000 .*p02_b1000\.nii\.gz shape \(12, 10, 7\) ≠ T1 .* resample .*sapkit prepare"


@case
def label_on_different_grid(root):
    shifted = AFFINE.copy()
    shifted[0, 3] = 5.0  # origin 5 mm away
    save_nifti(np.zeros(SHAPE, np.int16), shifted, root / "data" / "h00_skel.nii.gz")
    return manifest_loader(root), r"skeleton_label .*h00_skel\.nii\.gz grid lies up to 5 mm from the T1 "


@case
def affine_differs_by_a_flip(root):
    save_nifti(np.ones(SHAPE, np.float32), np.diag([-2.0, 2.0, 3.0, 1.0]), root / "data" / "p03_b1000.nii.gz")
    return manifest_loader(root), r"p03_b1000\.nii\.gz grid lies up to .*LAS.*RAS.*sapkit prepare"


@case
def non_integer_labels(root):
    save_nifti(np.full(SHAPE, 0.25, np.float32), AFFINE, root / "data" / "p04_lesion.nii.gz")
    return manifest_loader(root), r"p04_lesion\.nii\.gz holds non-integer values.*nearest-neighbour"


@case
def label_values_outside_the_map(root):
    data = np.zeros(SHAPE, np.int16)
    data[1, 1, 1] = 42
    save_nifti(data, AFFINE, root / "data" / "h01_skel.nii.gz")
    return manifest_loader(root), r"h01_skel\.nii\.gz contains label values \[42\] not in the declared map.*manifest\.yaml"


@case
def lesion_mask_with_value_two(root):
    data = np.zeros(SHAPE, np.uint8)
    data[1, 1, 1] = 2
    save_nifti(data, AFFINE, root / "data" / "p02_lesion.nii.gz")
    return manifest_loader(root), r"p02_lesion\.nii\.gz contains label values \[2\]"


@case
def empty_lesion_mask_in_a_patient(root):
    save_nifti(np.zeros(SHAPE, np.uint8), AFFINE, root / "data" / "p03_lesion.nii.gz")
    return manifest_loader(root), r"p03_s0: lesion_label .*p03_lesion\.nii\.gz is empty \(no voxel > 0\).*check that the right file"


@case
def duplicate_scan_ids(root):
    t = read_table(root)
    t.loc[3, "scan_id"] = t.loc[2, "scan_id"]
    write_table(root, t)
    return manifest_loader(root), r"duplicate scan_id\(s\) \['p02_s0'\]; every scan needs a unique id"


@case
def subject_in_two_folds(root):
    t = read_table(root)
    t["fold"] = ["", "", "0", "1", "0", "1"]
    t.loc[3, "subject_id"] = "p02"
    write_table(root, t)
    return manifest_loader(root), r"subject p02 appears in several folds"


@case
def empty_manifest(root):
    write_table(root, read_table(root).iloc[0:0])
    return manifest_loader(root), r"(?s)manifest .*manifest\.csv has 1 problem.*no rows; add one row per scan"


@case
def missing_column(root):
    write_table(root, read_table(root).drop(columns=["b1000"]))
    return manifest_loader(root), r"missing column\(s\) \['b1000'\]"


@case
def wrong_channel_order_declared(root):
    meta = yaml.safe_load((root / "data" / "manifest.yaml").read_text())
    meta["channels"] = ["b1000", "t1"]
    (root / "data" / "manifest.yaml").write_text(yaml.safe_dump(meta))
    return manifest_loader(root), r"manifest\.yaml: channels \['b1000', 't1'\] ≠ \['t1', 'b1000'\].*reorder"


@case
def path_escaping_data_root(root):
    t = read_table(root)
    t.loc[0, "b1000"] = "../outside.nii.gz"
    write_table(root, t)
    return manifest_loader(root), r"h00_s0: b1000 path '\.\./outside\.nii\.gz' leaves data_root"


@case
def absolute_path(root):
    t = read_table(root)
    t.loc[1, "t1"] = "/etc/hosts"
    write_table(root, t)
    return manifest_loader(root), r"h01_s0: t1 path '/etc/hosts' leaves data_root.*relative"


@case
def unknown_cohort(root):
    t = read_table(root)
    t.loc[0, "cohort"] = "control"
    write_table(root, t)
    return manifest_loader(root), r"h00_s0: cohort 'control' must be 'healthy' or 'patient'"


@case
def healthy_without_skeleton(root):
    t = read_table(root)
    t.loc[0, "skeleton_label"] = ""
    write_table(root, t)
    return manifest_loader(root), r"h00_s0: healthy scan without skeleton_label; label it"


@case
def manifest_not_yaml(root):
    (root / "data" / "manifest.yaml").write_text("name: [unclosed\n")
    return manifest_loader(root), r"manifest\.yaml is not valid YAML"


@case
def manifest_names_missing_csv(root):
    meta = yaml.safe_load((root / "data" / "manifest.yaml").read_text())
    meta["csv"] = "scans.csv"
    (root / "data" / "manifest.yaml").write_text(yaml.safe_dump(meta))
    return manifest_loader(root), r"names csv .*scans\.csv, which does not exist; fix the 'csv' key"


@case
def no_manifest_at_all(root):
    from sapkit.data.manifest import load_manifest

    return (lambda: load_manifest(root / "nowhere")), r"no manifest at .*nowhere.*sapkit synth"


@case
def nan_affine_in_b1000(root):
    nan_affine_nifti(root / "data" / "p04_b1000.nii.gz")
    return manifest_loader(root), r"p04_s0: b1000 file .*p04_b1000\.nii\.gz has a non-finite affine.*fix the header"


@case
def inf_affine_in_t1(root):
    nan_affine_nifti(root / "data" / "h00_t1.nii.gz", np.inf)
    return manifest_loader(root), r"h00_s0: T1 file .*h00_t1\.nii\.gz has a non-finite affine"


@case
def zero_spacing_in_label(root):
    zero_spacing_nifti(root / "data" / "h01_skel.nii.gz")
    return manifest_loader(root), r"h01_skel\.nii\.gz has an invalid geometry: voxel spacing \(2, 0, 3\) mm"


@case
def complex_valued_image(root):
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.ones(SHAPE, np.complex64), AFFINE), str(root / "data" / "p02_t1.nii.gz"))
    return manifest_loader(root), r"p02_t1\.nii\.gz holds complex-valued voxels \(complex64\).*scalar magnitude image"


@case
def rgb_image(root):
    import nibabel as nib

    rgb = np.zeros(SHAPE, dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    nib.save(nib.Nifti1Image(rgb, AFFINE), str(root / "data" / "p03_b1000.nii.gz"))
    return manifest_loader(root), r"p03_b1000\.nii\.gz holds RGB/colour voxels"


@case
def complex_valued_label(root):
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.zeros(SHAPE, np.complex64), AFFINE), str(root / "data" / "p05_lesion.nii.gz"))
    return manifest_loader(root), r"p05_lesion\.nii\.gz holds complex-valued voxels"


@case
def symlink_loop(root):
    import os

    (root / "data" / "p02_b1000.nii.gz").unlink()
    os.symlink("loop_b.nii.gz", root / "data" / "loop_a.nii.gz")
    os.symlink("loop_a.nii.gz", root / "data" / "loop_b.nii.gz")
    t = read_table(root)
    t.loc[2, "b1000"] = "loop_a.nii.gz"
    write_table(root, t)
    return manifest_loader(root), r"p02_s0: b1000 path 'loop_a\.nii\.gz' is a symbolic-link loop; point it at the real file"


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
    edit_meta(root, channels="t1, b1000")
    return manifest_loader(root), r"manifest\.yaml: channels must be a list of names, got 't1, b1000'; write channels: \[t1, b1000\]"


@case
def channels_a_number(root):
    edit_meta(root, channels=2)
    return manifest_loader(root), r"channels must be a list of names, got 2"


@case
def duplicated_csv_columns(root):
    text = (root / "data" / "manifest.csv").read_text().splitlines()
    text = [line + ("," + line.split(",")[4]) for line in text]
    text[0] = text[0].rsplit(",", 1)[0] + ",t1"
    (root / "data" / "manifest.csv").write_text("\n".join(text) + "\n")
    return manifest_loader(root), r"manifest\.csv has duplicated column name\(s\) \['t1'\]; keep one column of each name"


@case
def manifest_yaml_bomb(root):
    (root / "data" / "manifest.yaml").write_text(YAML_BOMB + "csv: manifest.csv\n")
    return manifest_loader(root), r"manifest\.yaml expands to more than 100,000 values through aliases"


@case
def manifest_recursive_alias(root):
    (root / "data" / "manifest.yaml").write_text("name: &n [1, *n]\ncsv: manifest.csv\n")
    return manifest_loader(root), r"manifest\.yaml has an anchor \(&name\) that contains an alias to itself"


@case
def manifest_python_tag(root):
    (root / "data" / "manifest.yaml").write_text("name: !!python/object/apply:os.getcwd []\n")
    return manifest_loader(root), r"manifest\.yaml uses a YAML tag sapkit does not load .*no !!python tags"


@case
def manifest_too_large(root):
    (root / "data" / "manifest.yaml").write_text("description: '" + "x" * 1_100_000 + "'\n")
    return manifest_loader(root), r"manifest\.yaml is larger than 1,000,000 bytes"


@case
def manifest_is_a_list(root):
    (root / "data" / "manifest.yaml").write_text("- name\n- csv\n")
    return manifest_loader(root), r"manifest\.yaml must hold a mapping"


@cli_case
def check_zero_voxel_spacing(root):
    zero_spacing_nifti(root / "data" / "h00_t1.nii.gz")
    return ["check", str(root / "data")], r"h00_t1\.nii\.gz has an invalid geometry: voxel spacing \(2, 0, 3\) mm", []


@cli_case
def check_nan_affine(root):
    nan_affine_nifti(root / "data" / "p03_b1000.nii.gz")
    return ["check", str(root / "data")], r"p03_b1000\.nii\.gz has a non-finite affine", []


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
    (root / "data" / "manifest.yaml").write_text(YAML_BOMB)
    return ["check", str(root / "data")], r"manifest\.yaml expands to more than 100,000 values", []


@cli_case
def check_channels_not_a_list(root):
    edit_meta(root, channels={"t1": 0})
    return ["check", str(root / "data")], r"channels must be a list of names", []


(test_bad_input_raises_clear_error_and_leaves_inputs_untouched,
 test_bad_input_on_the_command_line_exits_with_one_message) = catalogue_tests(CASES, CLI_CASES)
