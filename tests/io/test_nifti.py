import gzip
import hashlib

import nibabel as nib
import numpy as np
import pytest

from sapkit.errors import NiftiError
from sapkit.io.nifti import (nifti_image, orientation_code, read_image, read_label, read_scan, reorient_to_ras,
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
    q, s = int(ref.header["qform_code"]), int(ref.header["sform_code"])
    # non-zero codes are kept; a zero code takes the other one's value (both are written set)
    assert int(back.header["qform_code"]) == (q or s or 1) and int(back.header["sform_code"]) == (s or q or 1)
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
    with pytest.raises(NiftiError, match="flip.nii.gz grid lies up to .*sapkit prepare"):
        read_scan(tmp_path / "t1.nii.gz", tmp_path / "flip.nii.gz")


def test_saved_gzip_is_valid(tmp_path):
    save_nifti(np.ones((2, 2, 2), np.uint8), np.eye(4), tmp_path / "m.nii.gz")
    assert gzip.decompress((tmp_path / "m.nii.gz").read_bytes())[:4] == (348).to_bytes(4, "little")


def test_quantised_data_with_a_slope_and_four_dimensional_images(tmp_path):
    """save_nifti's slope: stored integers × slope on reading; (X, Y, Z, C) arrays keep the same geometry rule."""
    stored = np.arange(24, dtype=np.uint16).reshape(2, 3, 4)
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    src = nib.Nifti1Header()
    src.set_xyzt_units("mm", "sec")
    src["qform_code"], src["sform_code"] = 0, 2  # a code-0 qform gets the sform's code
    path = save_nifti(stored, affine, tmp_path / "p.nii.gz", header=src, dtype=np.uint16, slope=1 / 65535)
    img = nib.load(str(path))
    assert img.get_data_dtype() == np.uint16 and int(img.header["qform_code"]) == int(img.header["sform_code"]) == 2
    assert img.header.get_xyzt_units() == ("mm", "sec")
    np.testing.assert_allclose(img.get_fdata(), stored * (1 / 65535), rtol=1e-6)
    four = nifti_image(np.zeros((2, 3, 4, 2), np.float32), affine)
    assert four.shape == (2, 3, 4, 2) and int(four.header["qform_code"]) == int(four.header["sform_code"]) == 1
    np.testing.assert_array_equal(four.affine, affine)
    assert nifti_image(stored, affine).header.get_slope_inter() == (1.0, 0.0)


def test_no_writer_bypasses_save_nifti():
    """Every NIfTI sapkit writes is built by sapkit.io.nifti.nifti_image (files through save_nifti)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "sapkit"
    pattern = re.compile(r"nib\.save\(|\.to_filename\(|\.to_bytes\(|set_[qs]form\(")
    offenders = [f"{path.relative_to(root)}:{i}: {line.strip()}" for path in sorted(root.rglob("*.py"))
                 if path.relative_to(root).as_posix() != "io/nifti.py"
                 for i, line in enumerate(path.read_text().splitlines(), 1)
                 if pattern.search(line) and "nifti_image(" not in line]
    assert not offenders, offenders


# ---------------------------------------------------------------- header geometry (issue 14)
def _raw_nifti(path, data, *, zooms=(2.0, 2.0, 3.0), sform=None, s_code=0, qform=None, q_code=0):
    """A NIfTI written header-first, so nibabel does not fill in codes or an affine of its own."""
    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(data.dtype)
    hdr.set_data_shape(data.shape)
    hdr.set_zooms(zooms)
    if qform is not None:
        hdr.set_qform(qform, code=q_code)
    if sform is not None:
        hdr.set_sform(sform, code=s_code)
    nib.save(nib.Nifti1Image(data, None, hdr), str(path))
    return path


def test_code_zero_file_uses_nibabels_fallback_warns_and_is_written_with_codes_set(tmp_path):
    from sapkit.errors import GeometryWarning

    data = np.zeros((10, 4, 4), np.float32)
    data[7, 1, 1] = 1.0
    src = _raw_nifti(tmp_path / "old_converter.nii.gz", data)
    with pytest.warns(GeometryWarning, match=r"old_converter\.nii\.gz stores no orientation .*LAS"):
        image, affine, header = read_image(src)
    np.testing.assert_allclose(affine, nib.load(str(src)).affine)  # the documented rule: nibabel's fallback
    world = affine @ [7, 1, 1, 1]
    out = save_nifti(*reorient_to_ras(image, affine), tmp_path / "out.nii.gz", header=header)
    back = nib.load(str(out))
    assert int(back.header["qform_code"]) > 0 and int(back.header["sform_code"]) > 0
    voxel = np.argwhere(np.asarray(back.dataobj) == 1.0)[0]
    np.testing.assert_allclose(back.affine @ [*voxel, 1], world)  # same world position (x was mirrored before)


@pytest.mark.parametrize("sform, message", [
    (np.array([[2, 0, 0, np.nan], [0, 2, 0, 0], [0, 0, 3, 0], [0, 0, 0, 1.0]]), r"has a non-finite affine"),
    (np.diag([2.0, 0.0, 3.0, 1.0]), r"has an invalid geometry: voxel spacing \(2, 0, 3\) mm"),
    (np.array([[2, 2, 0, 0], [1, 1, 0, 0], [0, 0, 3, 0], [0, 0, 0, 1.0]]), r"has an invalid geometry: .*singular \(flat\) affine"),
])
def test_invalid_affines_are_refused_by_every_reader(tmp_path, sform, message):
    from sapkit.errors import NiftiError
    from sapkit.io.nifti import nifti_header

    path = _raw_nifti(tmp_path / "bad.nii.gz", np.ones((4, 5, 6), np.float32), sform=sform, s_code=1)
    for reader in (read_image, read_label, nifti_header):
        with pytest.raises(NiftiError, match=r"bad\.nii\.gz " + message):
            reader(path)


def test_zero_pixdim_without_sform_is_refused_not_set_to_one(tmp_path):
    from sapkit.errors import NiftiError

    path = _raw_nifti(tmp_path / "flat.nii.gz", np.ones((4, 5, 6), np.float32), zooms=(2.0, 1.0, 3.0))
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[84:88] = np.float32(0.0).tobytes()  # pixdim[2] = 0, as an old exporter writes it (nibabel refuses to)
    path.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(NiftiError, match=r"flat\.nii\.gz has an invalid voxel spacing pixdim \(2, 0, 3\) mm"):
        read_image(path)


def test_sheared_affine_is_written_as_one_geometry(tmp_path):
    sheared = np.array([[2.0, 0.3, 0, 5], [0, 2.0, 0, -4], [0, 0.2, 3.0, 1], [0, 0, 0, 1]])
    out = save_nifti(np.ones((20, 30, 10), np.float32), sheared, tmp_path / "s.nii.gz")
    hdr = nib.load(str(out)).header
    np.testing.assert_allclose(nib.load(str(out)).affine, sheared, atol=1e-6)
    # a qform cannot hold a shear: it is switched off rather than left 0.49 mm away from the sform
    assert int(hdr["qform_code"]) == 0 and int(hdr["sform_code"]) == 1


def test_qform_and_sform_disagreeing_by_more_than_a_voxel_warn_naming_both(tmp_path):
    from sapkit.errors import GeometryWarning

    q = np.diag([2.0, 2.0, 3.0, 1.0])
    q[0, 3] = 10.0
    path = _raw_nifti(tmp_path / "qs.nii.gz", np.ones((4, 5, 6), np.float32), sform=np.diag([2.0, 2.0, 3.0, 1.0]),
                      s_code=1, qform=q, q_code=1)
    with pytest.warns(GeometryWarning, match=r"qs\.nii\.gz: its qform \(code 1, RAS\) and sform \(code 1, RAS\) "
                                             r"disagree by 10 mm.*uses the sform"):
        _, affine, _ = read_image(path)
    assert affine[0, 3] == 0.0
