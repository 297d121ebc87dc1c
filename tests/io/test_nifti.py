import gzip
import hashlib

import nibabel as nib
import numpy as np
import pytest

from sapkit.errors import NiftiError
from sapkit.io.nifti import (orientation_code, read_image, read_label, read_scan, reorient_to_ras,
                       save_nifti, spacing_from_affine)


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name, dtype", [("anatomical.nii", np.float32), ("standard.nii.gz", np.uint8)])
def test_round_trip_of_real_nifti_keeps_affine_codes_and_values(nibabel_data, tmp_path, name, dtype):
    src = nibabel_data / name
    before = _digest(src)
    ref = nib.load(str(src))
    data, affine, header = read_image(src)
    out = save_nifti(data.astype(dtype), affine, tmp_path / "out.nii.gz", header=header)
    back = nib.load(str(out))
    np.testing.assert_allclose(back.affine, ref.affine, atol=1e-6)
    assert int(back.header["qform_code"]) == int(ref.header["qform_code"])
    assert int(back.header["sform_code"]) == int(ref.header["sform_code"])
    assert back.get_data_dtype() == np.dtype(dtype)
    np.testing.assert_array_equal(np.asarray(back.dataobj), data.astype(dtype))
    assert _digest(src) == before  # input untouched


def test_reorient_las_to_ras_round_trip_preserves_world_positions(nibabel_data):
    data, affine, _ = read_image(nibabel_data / "anatomical.nii")
    assert orientation_code(affine) == "LAS"
    ras, ras_affine = reorient_to_ras(data, affine)
    assert orientation_code(ras_affine) == "RAS"
    assert spacing_from_affine(ras_affine) == pytest.approx(spacing_from_affine(affine))
    # the voxel at index i in the original sits at the same world point in the RAS copy
    idx = np.array([3, 7, 11, 1.0])
    world = affine @ idx
    ras_idx = np.linalg.inv(ras_affine) @ world
    assert data[3, 7, 11] == ras[tuple(np.round(ras_idx[:3]).astype(int))]
    # and back: reorienting a RAS image is the identity
    again, again_affine = reorient_to_ras(ras, ras_affine)
    np.testing.assert_array_equal(again, ras)
    np.testing.assert_allclose(again_affine, ras_affine)


def test_reorient_channels_first(nibabel_data):
    data, affine, _ = read_image(nibabel_data / "anatomical.nii")
    stacked = np.stack([data, data * 2])
    out, _ = reorient_to_ras(stacked, affine)
    assert out.shape == (2, *data.shape)
    np.testing.assert_array_equal(out[1], out[0] * 2)


def test_4d_file_is_refused_with_the_file_named(nibabel_data):
    path = nibabel_data / "example4d.nii.gz"
    with pytest.raises(NiftiError, match=r"example4d\.nii\.gz is 4D.*one file per channel"):
        read_image(path)


def test_truncated_gzip_is_refused(nibabel_data, tmp_path):
    raw = (nibabel_data / "standard.nii.gz").read_bytes()
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(NiftiError, match="broken.nii.gz is not a readable NIfTI"):
        read_image(bad)


def test_missing_file_named():
    with pytest.raises(NiftiError, match="nope.nii.gz does not exist"):
        read_image("nope.nii.gz")


def test_non_finite_and_non_integer_labels(tmp_path):
    data = np.zeros((4, 4, 4), np.float32)
    data[1, 1, 1] = np.nan
    save_nifti(data, np.eye(4), tmp_path / "nan.nii.gz")
    with pytest.raises(NiftiError, match="nan.nii.gz has 1 NaN/Inf"):
        read_image(tmp_path / "nan.nii.gz")
    data[1, 1, 1] = 0.5
    save_nifti(data, np.eye(4), tmp_path / "frac.nii.gz")
    with pytest.raises(NiftiError, match="frac.nii.gz holds non-integer values"):
        read_label(tmp_path / "frac.nii.gz")
    data[1, 1, 1] = 12
    save_nifti(data, np.eye(4), tmp_path / "big.nii.gz")
    with pytest.raises(NiftiError, match=r"values \[12\] not in the declared map"):
        read_label(tmp_path / "big.nii.gz", allowed={0, 1})
    labels, _, _ = read_label(tmp_path / "big.nii.gz", allowed=set(range(13)))
    assert labels.dtype == np.int16 and labels[1, 1, 1] == 12


def test_read_scan_stacks_channels_and_checks_grid(tmp_path):
    a = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    save_nifti(a, np.diag([2, 2, 3, 1.0]), tmp_path / "t1.nii.gz")
    save_nifti(a * 2, np.diag([2, 2, 3, 1.0]), tmp_path / "b.nii.gz")
    scan = read_scan(tmp_path / "t1.nii.gz", tmp_path / "b.nii.gz")
    assert scan.image.shape == (2, 3, 4, 5) and scan.image.dtype == np.float32
    assert scan.spacing_mm == (2.0, 2.0, 3.0)
    np.testing.assert_array_equal(scan.image[1], 2 * a)
    assert "RAS" in repr(scan)
    flipped = np.diag([-2, 2, 3, 1.0])
    save_nifti(a, flipped, tmp_path / "flip.nii.gz")
    with pytest.raises(NiftiError, match="flip.nii.gz affine differs.*sapkit prepare"):
        read_scan(tmp_path / "t1.nii.gz", tmp_path / "flip.nii.gz")


def test_saved_gzip_is_valid(tmp_path):
    save_nifti(np.ones((2, 2, 2), np.uint8), np.eye(4), tmp_path / "m.nii.gz")
    assert gzip.decompress((tmp_path / "m.nii.gz").read_bytes())[:4] == (348).to_bytes(4, "little")
