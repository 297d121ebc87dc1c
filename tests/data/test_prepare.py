"""Conforming user data: LPS → RAS without moving any voxel in the world, b1000 onto the T1 grid."""

import hashlib

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from sapkit.errors import ConfigError
from sapkit.data.manifest import load_manifest, write_manifest
from sapkit.data.prepare import prepare_manifest
from sapkit.io.nifti import orientation_code, read_image, read_label

# T1 on an LPS grid: voxel (i, j, k) sits at world (30 - 2i, 20 - 2j, -10 + 3k) mm
T1_AFFINE = np.array([[-2.0, 0, 0, 30], [0, -2.0, 0, 20], [0, 0, 3.0, -10], [0, 0, 0, 1]])
T1_SHAPE = (8, 6, 5)
MARK = (1, 2, 3)  # a voxel with a unique T1 value and a lesion label
# b1000 on a finer RAS grid (1 mm) that covers the T1 field of view with room to spare
B_AFFINE = np.array([[1.0, 0, 0, 10], [0, 1.0, 0, 5], [0, 0, 1.0, -15], [0, 0, 0, 1]])
B_SHAPE = (26, 21, 22)


def _ramp(world: np.ndarray) -> np.ndarray:
    """b1000 intensity as a linear function of world position (mm): trilinear resampling keeps it exactly."""
    return 5.0 + 0.5 * world[0] + 0.25 * world[1] - 0.1 * world[2]


def _world(affine: np.ndarray, shape) -> np.ndarray:
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")).reshape(3, -1)
    return (affine[:3, :3] @ ijk + affine[:3, 3:]).reshape(3, *shape)


def _save(path, data, affine):
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    nib.save(img, str(path))
    return path.name


def _digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture
def lps_input(tmp_path):
    rng = np.random.default_rng(5)
    src = tmp_path / "in"
    src.mkdir()
    t1 = rng.normal(100, 5, T1_SHAPE).astype(np.float32)
    t1[MARK] = 999.0
    lesion = np.zeros(T1_SHAPE, np.uint8)
    lesion[MARK] = 1
    lesion[5, 0, 1] = 1
    b1000 = _ramp(_world(B_AFFINE, B_SHAPE)).astype(np.float32)
    rows = pd.DataFrame([{"scan_id": "p1_s0", "subject_id": "p1", "site": "a", "cohort": "patient",
                          "t1": _save(src / "t1.nii.gz", t1, T1_AFFINE), "b1000": _save(src / "b1000.nii.gz", b1000, B_AFFINE),
                          "skeleton_label": "", "lesion_label": _save(src / "lesion.nii.gz", lesion, T1_AFFINE)}])
    write_manifest(src, rows, name="lps", description="LPS T1, finer RAS b1000")
    return src, t1, lesion


def test_reorientation_keeps_every_voxel_in_place_in_the_world(lps_input, tmp_path):
    src, t1, lesion = lps_input
    m = load_manifest(prepare_manifest(src, tmp_path / "out"))  # validates: every file on the T1 grid
    out_t1, affine, _ = read_image(m.scans.loc[0, "t1"])
    assert orientation_code(T1_AFFINE) == "LPS" and orientation_code(affine) == "RAS"
    assert out_t1.shape == T1_SHAPE  # both flipped axes keep their length
    np.testing.assert_array_equal(np.sort(out_t1, axis=None), np.sort(t1, axis=None))  # a pure permutation
    new_mark = np.unravel_index(np.argmax(out_t1), out_t1.shape)
    assert new_mark == (T1_SHAPE[0] - 1 - MARK[0], T1_SHAPE[1] - 1 - MARK[1], MARK[2])
    np.testing.assert_allclose(affine @ [*new_mark, 1], T1_AFFINE @ [*MARK, 1], atol=1e-6)
    # every voxel: the value at a world position is the same before and after
    np.testing.assert_allclose(_world(affine, T1_SHAPE)[:, ::-1, ::-1, :], _world(T1_AFFINE, T1_SHAPE), atol=1e-6)
    np.testing.assert_array_equal(out_t1[::-1, ::-1, :], t1)
    out_lesion, l_affine, _ = read_label(m.scans.loc[0, "lesion_label"])
    np.testing.assert_array_equal(l_affine, affine)
    assert out_lesion[new_mark] == 1 and out_lesion.sum() == lesion.sum() == 2


def test_b1000_is_resampled_onto_the_t1_grid(lps_input, tmp_path):
    src, _, _ = lps_input
    m = load_manifest(prepare_manifest(src, tmp_path / "out"))
    _, affine, _ = read_image(m.scans.loc[0, "t1"])
    b, b_affine, _ = read_image(m.scans.loc[0, "b1000"])
    assert b.shape == T1_SHAPE
    np.testing.assert_array_equal(b_affine, affine)
    # trilinear interpolation of a linear ramp is exact: b1000 at each T1 voxel = ramp at its world position
    np.testing.assert_allclose(b, _ramp(_world(affine, T1_SHAPE)), atol=1e-4)


def test_inputs_are_byte_identical_afterwards(lps_input, tmp_path):
    src, _, _ = lps_input
    before = _digests(src)
    prepare_manifest(src, tmp_path / "out")
    prepare_manifest(src, tmp_path / "out4", spacing_mm=(4, 4, 5))
    assert _digests(src) == before
    with pytest.raises(ConfigError, match="is the input data folder"):
        prepare_manifest(src, src)
    assert _digests(src) == before


def test_resampling_to_a_target_spacing(lps_input, tmp_path):
    src, _, _ = lps_input
    # (not validated: nearest-neighbour downsampling may drop the two single-voxel lesions)
    m = load_manifest(prepare_manifest(src, tmp_path / "out4", spacing_mm=(4, 4, 5)), check_files=False)
    t1, affine, _ = read_image(m.scans.loc[0, "t1"])
    b, _, _ = read_image(m.scans.loc[0, "b1000"])
    # RAS copy: origin (16, 10, -10) mm at 2/2/3 mm → 4/4/5 mm, first voxel's outer edge (15, 9, -11.5) fixed
    assert t1.shape == b.shape == (4, 3, 3)
    np.testing.assert_allclose(affine, [[4, 0, 0, 17], [0, 4, 0, 11], [0, 0, 5, -9], [0, 0, 0, 1]])
    # b1000 goes straight from its own grid to the new one: the ramp still holds
    np.testing.assert_allclose(b, _ramp(_world(affine, b.shape)), atol=1e-4)
    assert "resampled to [4, 4, 5]" in m.description


def test_upsampling_keeps_the_whole_field_of_view(lps_input, tmp_path):
    """2/2/3 mm → 1/1/1.5 mm: every output voxel centre lies inside a source voxel, the outer half-voxel shell
    included, so each source voxel becomes exactly 2×2×2 output voxels (the scipy resampler of earlier versions
    set that shell to 0: a lesion on the border lost voxels and the T1 got a black frame)."""
    src, t1, lesion = lps_input
    m = load_manifest(prepare_manifest(src, tmp_path / "up", reorient=None, spacing_mm=(1, 1, 1.5)), check_files=False)
    out_t1, affine, _ = read_image(m.scans.loc[0, "t1"])
    out_lesion, _, _ = read_label(m.scans.loc[0, "lesion_label"])
    assert out_t1.shape == tuple(2 * s for s in T1_SHAPE)
    # linear interpolation stays within the source's range everywhere, the border planes included (no 0 frame)
    assert t1.min() - 1e-3 <= out_t1.min() and out_t1.max() <= t1.max() + 1e-3
    np.testing.assert_array_equal(out_lesion, np.repeat(np.repeat(np.repeat(lesion, 2, 0), 2, 1), 2, 2))
    assert out_lesion.sum() == 8 * lesion.sum()  # the lesion at (5, 0, 1) touches the border plane y = 0


def test_unknown_reorientation_is_a_config_error(lps_input, tmp_path):
    src, _, _ = lps_input
    with pytest.raises(ConfigError, match="reorient must be 'RAS' or None, got 'LPS'"):
        prepare_manifest(src, tmp_path / "out", reorient="LPS")


# ---------------------------------------------------------------- issue 14: geometry and untouched inputs
def _code_zero_cohort(root):
    """Two healthy scans whose files store no orientation (qform_code = sform_code = 0)."""
    from conftest import write_tiny_cohort

    write_tiny_cohort(root, n_healthy=2, n_patients=0)
    for path in sorted(root.glob("*.nii.gz")):
        img = nib.load(str(path))
        data = np.asarray(img.dataobj)
        if path.name.endswith("_t1.nii.gz"):
            data = np.zeros_like(data)
            data[1, 2, 3] = 7.0  # one bright voxel to follow into the output
        hdr = nib.Nifti1Header()
        hdr.set_data_dtype(data.dtype)
        hdr.set_data_shape(data.shape)
        hdr.set_zooms((2.0, 2.0, 3.0))
        nib.save(nib.Nifti1Image(data, None, hdr), str(path))
    return root


def test_code_zero_inputs_keep_every_voxel_in_the_world(tmp_path):
    src = _code_zero_cohort(tmp_path / "in")
    t1 = nib.load(str(src / "h00_t1.nii.gz"))
    assert int(t1.header["qform_code"]) == int(t1.header["sform_code"]) == 0
    world = t1.affine @ [1, 2, 3, 1]  # the documented rule: nibabel's fallback affine
    assert world[0] > 0  # x flipped (LAS): the bright voxel sits right of the centre
    with pytest.warns(UserWarning, match="stores no orientation"):
        out = prepare_manifest(src, tmp_path / "out")
    back = nib.load(str(out.parent / "h00_s0_t1.nii.gz"))
    assert int(back.header["qform_code"]) > 0 and int(back.header["sform_code"]) > 0
    voxel = np.argwhere(np.asarray(back.dataobj) == 7.0)[0]
    np.testing.assert_allclose(back.affine @ [*voxel, 1], world)  # was mirrored to -x before the fix
    assert orientation_code(back.affine) == "RAS"


def _digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def _cohort_named_like_outputs(tmp_path, images_sub: str):
    """A cohort whose image files are named ``<scan_id>_<column>.nii.gz`` (as prepare names its outputs)."""
    from conftest import write_tiny_cohort

    src = tmp_path / "raw"
    write_tiny_cohort(src)
    table = pd.read_csv(src / "manifest.csv", dtype=str, keep_default_na=False)
    images = tmp_path / "data" / images_sub
    images.mkdir(parents=True)
    for i, row in table.iterrows():
        for col in ("t1", "b1000", "skeleton_label", "lesion_label"):
            if row[col]:
                name = f"{row['scan_id']}_{col}.nii.gz"
                (src / row[col]).rename(images / name)
                table.loc[i, col] = f"{images_sub}/{name}".lstrip("/")
    return write_manifest(tmp_path / "data", table, name="x", description="y"), images


@pytest.mark.parametrize("where", ["manifest_folder", "image_folder", "data_root"])
def test_out_over_the_inputs_is_refused_and_nothing_is_written(tmp_path, where):
    from conftest import write_tiny_cohort

    if where == "manifest_folder":  # data_root points elsewhere, --out = the manifest's folder
        write_tiny_cohort(tmp_path / "scans")
        table = pd.read_csv(tmp_path / "scans" / "manifest.csv", dtype=str, keep_default_na=False)
        manifest = write_manifest(tmp_path / "meta", table, name="x", description="y", data_root="../scans")
        out = tmp_path / "meta"
    elif where == "image_folder":  # manifest in data/, the 18 images in data/images/ under the output names
        manifest, out = _cohort_named_like_outputs(tmp_path, "images")
    else:
        manifest, out = tmp_path / "data" / "manifest.yaml", tmp_path / "data"
        write_tiny_cohort(tmp_path / "data")
    before = _digests(tmp_path)
    with pytest.raises(ConfigError, match=r"--out .* (is the input data folder|would overwrite input file)"):
        prepare_manifest(manifest, out)
    assert _digests(tmp_path) == before


def test_a_late_failing_scan_leaves_no_partial_output(tmp_path):
    from conftest import write_tiny_cohort

    from sapkit.errors import NiftiError

    src = write_tiny_cohort(tmp_path / "in").parent
    last = src / "p05_b1000.nii.gz"  # header fine, voxel data truncated: found only when decoded
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    with pytest.raises(NiftiError, match=r"(?s)p05_b1000\.nii\.gz is not a readable NIfTI.*stopped; the \d+ file\(s\) "
                                         r"it had written into .*out were removed"):
        prepare_manifest(src, out)
    assert not out.exists() or sorted(p.name for p in out.rglob("*") if p.is_file()) == []


def test_sheared_input_gives_consistent_qform_and_sform(tmp_path):
    from conftest import write_tiny_cohort

    src = write_tiny_cohort(tmp_path / "in", n_healthy=1, n_patients=0).parent
    shear = np.array([[2.0, 0.4, 0, 0], [0, 2.0, 0, 0], [0, 0.3, 3.0, 0], [0, 0, 0, 1]])
    for path in src.glob("*.nii.gz"):
        img = nib.load(str(path))
        new = nib.Nifti1Image(np.asarray(img.dataobj), shear)
        new.set_sform(shear, code=1)
        new.set_qform(shear, code=1)  # as a scanner export: both codes set (qform = nearest rotation)
        nib.save(new, str(path))
    out = prepare_manifest(src, tmp_path / "out")
    for path in out.parent.glob("*.nii.gz"):
        hdr = nib.load(str(path)).header
        q_code, s_code = int(hdr["qform_code"]), int(hdr["sform_code"])
        assert s_code > 0
        if q_code > 0:  # whatever a reader picks, it places the voxels the same way
            corners = np.array([[x, y, z, 1] for x in (0, 11) for y in (0, 9) for z in (0, 13)]).T
            assert np.abs(hdr.get_qform() @ corners - hdr.get_sform() @ corners).max() < 1e-3
