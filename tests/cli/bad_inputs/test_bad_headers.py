"""Malformed images as converters and hand-made scripts write them, and manifests whose values contradict each
other (issue 23): 2-D and 5-D files with converter-style headers, empty images, voxel sizes in the wrong unit,
images without signal, one file named for two channels, a subject in both cohorts, odd voxel types.

See ``bad_input_catalogue`` for what every case must do.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np

from sapkit.io.nifti import save_nifti

from bad_input_catalogue import (
    catalogue_tests, AFFINE, SHAPE, manifest_loader, read_table, write_table, registry,
)

CASES, CLI_CASES, case, cli_case = registry()


def _converter_style(path, data, affine=AFFINE):
    """Both codes set (scanner qform, aligned sform), as dcm2niix writes them."""
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    nib.save(img, str(path))


def _scan_at(root, scan: str, affine) -> None:
    """Every file of ``scan`` (images and label) rewritten on the grid ``affine``, voxels kept."""
    t = read_table(root)
    row = t[t["scan_id"] == scan].iloc[0]
    for col in ("t1", "b1000", "skeleton_label", "lesion_label"):
        if row[col]:
            path = root / "data" / row[col]
            img = nib.load(str(path))
            _converter_style(path, np.asarray(img.dataobj), affine)


# ---------------------------------------------------------------- dimensionality
@case
def image_2d_with_qform_and_sform(root):  # issue 23: IndexError in io/nifti.py
    _converter_style(root / "data" / "h01_t1.nii.gz", np.ones(SHAPE[:2], np.float32))
    return manifest_loader(root), r"h01_t1\.nii\.gz is 2D with shape \(12, 10\): one slice, not a volume"


@case
def label_2d_with_qform_and_sform(root):
    _converter_style(root / "data" / "h00_skel.nii.gz", np.zeros(SHAPE[:2], np.int16))
    return manifest_loader(root), r"h00_skel\.nii\.gz is 2D with shape \(12, 10\)"


@case
def header_dim0_2_with_3d_pixdim(root):
    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(np.float32)
    hdr.set_data_shape(SHAPE[:2])
    hdr["pixdim"][1:4] = (2.0, 2.0, 3.0)
    hdr.set_qform(AFFINE, code=1)
    hdr.set_sform(AFFINE, code=1)
    nib.save(nib.Nifti1Image(np.ones(SHAPE[:2], np.float32), None, hdr), str(root / "data" / "p02_b1000.nii.gz"))
    return manifest_loader(root), r"p02_b1000\.nii\.gz is 2D"


@case
def image_5d_from_a_converter(root):
    _converter_style(root / "data" / "p03_b1000.nii.gz", np.ones((*SHAPE, 1, 2), np.float32))
    return manifest_loader(root), r"p03_b1000\.nii\.gz is 5D with shape \(12, 10, 14, 1, 2\); sapkit needs one 3D"


@case
def image_without_voxels(root):
    _converter_style(root / "data" / "p04_t1.nii.gz", np.ones((0, *SHAPE[1:]), np.float32))
    return manifest_loader(root), r"p04_t1\.nii\.gz has no voxels \(shape \(0, 10, 14\)\)"


# ---------------------------------------------------------------- voxel sizes in the wrong unit
@case
def voxel_spacing_of_a_kilometre(root):  # issue 23: `sapkit check` accepted it
    _scan_at(root, "h00_s0", np.diag([1e6, 1e6, 1e6, 1.0]))
    return manifest_loader(root), r"h00_s0: T1 file .*h00_t1\.nii\.gz has a voxel spacing of \(1e\+06, 1e\+06, 1e\+06\) mm, " \
                                  r"outside 0\.05–50 mm.*units"


@case
def voxel_spacing_in_metres(root):
    _scan_at(root, "p02_s0", np.diag([0.002, 0.002, 0.003, 1.0]))
    return manifest_loader(root), r"p02_t1\.nii\.gz has a voxel spacing of \(0\.002, 0\.002, 0\.003\) mm, outside"


@case
def voxel_spacing_in_micrometres(root):
    _scan_at(root, "p03_s0", np.diag([2000.0, 2000.0, 3000.0, 1.0]))
    return manifest_loader(root), r"p03_t1\.nii\.gz has a voxel spacing of \(2000, 2000, 3000\) mm"


@case
def one_axis_of_a_kilometre(root):
    _scan_at(root, "p04_s0", np.diag([2.0, 2.0, 1e6, 1.0]))
    return manifest_loader(root), r"p04_t1\.nii\.gz has a voxel spacing of \(2, 2, 1e\+06\) mm"


# ---------------------------------------------------------------- images without signal
@case
def all_zero_t1(root):  # issue 23: `sapkit check` accepted it
    save_nifti(np.zeros(SHAPE, np.float32), AFFINE, root / "data" / "p02_t1.nii.gz")
    return manifest_loader(root), r"p02_s0: T1 file .*p02_t1\.nii\.gz holds the value 0 in every voxel.*failed conversion"


@case
def constant_b1000(root):
    save_nifti(np.full(SHAPE, 7.0, np.float32), AFFINE, root / "data" / "p03_b1000.nii.gz")
    return manifest_loader(root), r"p03_s0: b1000 file .*p03_b1000\.nii\.gz holds the value 7 in every voxel"


@case
def saturated_uint8_t1(root):
    save_nifti(np.full(SHAPE, 255, np.uint8), AFFINE, root / "data" / "h00_t1.nii.gz")
    return manifest_loader(root), r"h00_t1\.nii\.gz holds the value 255 in every voxel"


@case
def all_nan_b1000(root):
    save_nifti(np.full(SHAPE, np.nan, np.float32), AFFINE, root / "data" / "h01_b1000.nii.gz")
    return manifest_loader(root), r"h01_b1000\.nii\.gz has 1680 NaN/Inf voxels"


# ---------------------------------------------------------------- manifest values that contradict each other
@case
def subject_in_both_cohorts(root):  # issue 23: `sapkit check` accepted it
    t = read_table(root)
    t.loc[2, "subject_id"] = "h00"
    write_table(root, t)
    return manifest_loader(root), r"subject h00 has healthy scan\(s\) \['h00_s0'\] and patient scan\(s\) \['p02_s0'\]"


@case
def one_file_for_both_channels(root):
    t = read_table(root)
    t.loc[3, "b1000"] = t.loc[3, "t1"]
    write_table(root, t)
    return manifest_loader(root), r"p03_s0: t1 and b1000 name the same file 'p03_t1\.nii\.gz'"


@case
def semicolon_separated_csv(root):
    read_table(root).to_csv(root / "data" / "manifest.csv", index=False, sep=";")
    return manifest_loader(root), r"missing column\(s\).*the file seems to be separated by ';'"


@case
def lesion_label_is_the_t1_image(root):
    t = read_table(root)
    t.loc[4, "lesion_label"] = t.loc[4, "t1"]
    write_table(root, t)
    return manifest_loader(root), r"p04_s0: lesion_label file .*p04_t1\.nii\.gz holds non-integer values"


# ---------------------------------------------------------------- odd voxel types
@case
def label_almost_integer(root):
    data = np.zeros(SHAPE, np.float32)
    data[1, 1, 1] = 1.0000001
    save_nifti(data, AFFINE, root / "data" / "p05_lesion.nii.gz")
    return manifest_loader(root), r"p05_lesion\.nii\.gz holds non-integer values"


@case
def label_with_a_half_slope(root):
    img = nib.Nifti1Image(np.ones(SHAPE, np.int16), AFFINE)
    img.header.set_slope_inter(0.5, 0.0)
    nib.save(img, str(root / "data" / "h01_skel.nii.gz"))
    return manifest_loader(root), r"h01_skel\.nii\.gz holds non-integer values"


@case
def label_uint64_beyond_int16(root):
    data = np.zeros(SHAPE, np.uint64)
    data[1, 1, 1] = 2 ** 40
    save_nifti(data, AFFINE, root / "data" / "p02_lesion.nii.gz")
    return manifest_loader(root), r"p02_lesion\.nii\.gz has values outside int16 range"


@case
def negative_skeleton_label(root):
    data = np.zeros(SHAPE, np.int16)
    data[1, 1, 1] = -1
    save_nifti(data, AFFINE, root / "data" / "h00_skel.nii.gz")
    return manifest_loader(root), r"h00_skel\.nii\.gz contains label values \[-1\] not in the declared map"


# ---------------------------------------------------------------- the same through `sapkit check`
@cli_case
def check_2d_image_with_both_codes(root):
    _converter_style(root / "data" / "h00_t1.nii.gz", np.ones(SHAPE[:2], np.float32))
    return ["check", str(root / "data")], r"h00_t1\.nii\.gz is 2D with shape \(12, 10\)", []


@cli_case
def check_kilometre_voxels(root):
    _scan_at(root, "h01_s0", np.diag([1e6, 1e6, 1e6, 1.0]))
    return ["check", str(root / "data")], r"h01_t1\.nii\.gz has a voxel spacing of \(1e\+06, 1e\+06, 1e\+06\) mm", []


@cli_case
def check_all_zero_t1(root):
    save_nifti(np.zeros(SHAPE, np.float32), AFFINE, root / "data" / "p05_t1.nii.gz")
    return ["check", str(root / "data")], r"p05_t1\.nii\.gz holds the value 0 in every voxel", []


@cli_case
def check_subject_in_both_cohorts(root):
    t = read_table(root)
    t.loc[5, "subject_id"] = "h01"
    write_table(root, t)
    return ["check", str(root / "data")], r"subject h01 has healthy scan\(s\) \['h01_s0'\] and patient scan\(s\) \['p05_s0'\]", []


@cli_case
def check_one_file_for_both_channels(root):
    t = read_table(root)
    t.loc[0, "t1"] = t.loc[0, "b1000"]
    write_table(root, t)
    return ["check", str(root / "data")], r"h00_s0: t1 and b1000 name the same file 'h00_b1000\.nii\.gz'", []


@cli_case
def check_empty_image(root):
    _converter_style(root / "data" / "p02_b1000.nii.gz", np.ones((*SHAPE[:2], 0), np.float32))
    return ["check", str(root / "data")], r"p02_b1000\.nii\.gz has no voxels", []


(test_bad_input_raises_clear_error_and_leaves_inputs_untouched,
 test_bad_input_on_the_command_line_exits_with_one_message) = catalogue_tests(CASES, CLI_CASES)
