"""The preprocessing steps one by one on volumes with a known answer: body mask, N4, station
standardisation, union grid, stitching, registration, ADC, Nyúl."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from sapkit.config import RegisterConfig
from sapkit.imaging.resample import resample
from sapkit.preprocessing.adc import fit_adc
from sapkit.preprocessing.bias import body_mask, n4_field
from sapkit.preprocessing.geometry import Volume, union_grid
from sapkit.preprocessing.isis import chain_factors, overlap_ratio, reference_station
from sapkit.preprocessing.nyul import apply_standard_scale, fit_standard_scale, landmarks
from sapkit.preprocessing.register import register_station
from sapkit.preprocessing.stitch import ramp_weight, stacking_direction, station_order, stitch


def _body(shape=(40, 32, 60), seed=0) -> np.ndarray:
    """Air around an elliptic 'body' of fat (1000) holding smooth muscle blobs (420) and a dark lung."""
    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    inside = (x / 0.85) ** 2 + (y / 0.8) ** 2 <= 1
    blobs = ndimage.gaussian_filter(rng.standard_normal(shape), 3) > 0.02
    img = np.where(inside[..., None], np.where(blobs, 420.0, 1000.0), 0.0)
    img[12:20, 10:18, 20:30] = np.where(inside[12:20, 10:18, None], 45.0, 0.0)
    return img.astype(np.float32)


def test_body_mask_fills_holes_and_drops_specks():
    img = _body()
    noisy = img + np.abs(np.random.default_rng(1).normal(0, 8, img.shape)).astype(np.float32)
    noisy[1, 1, 1] = 900.0  # an isolated bright speck in the air
    mask = body_mask(noisy)
    assert mask[15, 14, 25]  # the dark lung inside the body is body
    assert not mask[1, 1, 1] and not mask[0, 0, :].any()
    assert mask.sum() == (img > 0).sum()


def test_n4_removes_a_smooth_multiplicative_field():
    img = _body((32, 24, 36))
    z = np.linspace(-1, 1, img.shape[2])[None, None, :]
    x = np.linspace(-1, 1, img.shape[0])[:, None, None]
    field = np.broadcast_to(np.exp(0.25 * x + 0.2 * z * z), img.shape).astype(np.float32)
    mask = img > 100  # the tissue (the lung is too dark to carry the field)
    field_found = n4_field(img * field, np.diag([4.0, 4.0, 4.0, 1.0]), mask, shrink_factor=2, iterations=(50, 50))
    residual = np.log(field_found[mask]) - np.log(field[mask])
    before = np.log(field[mask])
    assert residual.std() < 0.2 * before.std()  # ≥ 80 % of the field's variation removed
    assert abs(np.exp(np.log(field_found[mask]).mean()) - 1) < 1e-4  # geometric mean 1 inside the mask


def test_n4_without_a_body_returns_ones():
    assert np.array_equal(n4_field(np.zeros((8, 8, 8)), np.eye(4), np.zeros((8, 8, 8), bool)), np.ones((8, 8, 8)))


def _stations(volume: np.ndarray, slabs, scales, spacing=3.0):
    out = []
    for (a, b), s in zip(slabs, scales):
        affine = np.diag([spacing] * 3 + [1.0])
        affine[2, 3] = a * spacing
        out.append(Volume((volume[:, :, a:b] * s).astype(np.float32), affine))
    return out


def test_standardisation_chains_overlap_ratios_from_the_reference():
    img = _body()
    vols = _stations(img, [(0, 24), (18, 42), (36, 60)], [1.0, 1.6, 0.7])
    masks = [body_mask(v.array) for v in vols]
    ratios = [overlap_ratio(a, ma, b, mb)[0] for a, b, ma, mb in zip(vols[:-1], vols[1:], masks[:-1], masks[1:])]
    np.testing.assert_allclose(ratios, [1 / 1.6, 1.6 / 0.7], rtol=1e-5)
    factors = chain_factors(ratios, reference_station("centre", [int(m.sum()) for m in masks]))
    np.testing.assert_allclose(np.array(factors) * [1.0, 1.6, 0.7], [1.6, 1.6, 1.6], rtol=1e-5)  # all on station 2's scale
    assert np.isnan(overlap_ratio(vols[0], masks[0], vols[2], masks[2])[0])  # no overlap: no ratio
    assert chain_factors([float("nan")], 0) == [1.0, 1.0]


def test_union_grid_of_unaligned_stations_covers_them_on_the_reference_lattice():
    a = np.diag([2.0, 2.0, 3.0, 1.0])
    b = a.copy()
    b[:3, 3] = [-1.0, 0.0, -40.5]  # half a voxel off in x and z
    shape, affine = union_grid([((10, 8, 20), a), ((10, 8, 20), b)], reference=0)
    assert np.allclose(affine[:3, :3], a[:3, :3]) and affine[0, 3] == -2.0 and affine[2, 3] == -42.0
    assert shape == (11, 8, 34)


def test_ramp_weights_sum_to_one_across_an_overlap():
    img = _body()
    top, bottom = _stations(img, [(20, 44), (0, 30)], [1.0, 1.0])
    u = stacking_direction([top, bottom])
    assert u.tolist() == [0.0, 0.0, 1.0] and station_order([bottom, top]) == [1, 0]
    w_top = ramp_weight(top, u, above=None, below=(0.0, 29 * 3.0))
    w_bottom = ramp_weight(bottom, u, above=(20 * 3.0, 43 * 3.0), below=None)
    overlap_top, overlap_bottom = w_top[0, 0, :10], w_bottom[0, 0, 20:30]  # slices 20..29 of the volume
    np.testing.assert_allclose(overlap_top + overlap_bottom, 1.0, atol=1e-6)
    assert w_top[0, 0, 0] == 0.0 and w_top[0, 0, 10:].min() == 1.0 and w_bottom[0, 0, 29] == 0.0


@pytest.mark.parametrize("blend", ["ramp", "none"])
def test_stitching_stations_cut_from_a_volume_gives_the_volume_back(blend):
    img = _body()
    labels = (img == 420).astype(np.uint8) + 2 * (img == 45)
    slabs = [(40, 60), (22, 46), (0, 28)]
    vols = _stations(img, slabs, [1.0, 1.0, 1.0])
    per_station = [{"tissue": labels[:, :, a:b]} for a, b in slabs]
    shape, affine = union_grid([(v.array.shape, v.affine) for v in vols])
    out = stitch(vols, shape, affine, blend=blend, labels=per_station)
    assert shape == img.shape and affine[2, 3] == 0.0
    np.testing.assert_allclose(out.image, img, rtol=1e-5, atol=1e-3)
    assert out.coverage.all() and np.array_equal(out.labels["tissue"], labels)


def test_registration_recovers_a_known_translation():
    rng = np.random.default_rng(3)
    fixed = ndimage.gaussian_filter(rng.standard_normal((48, 40, 48)), 3).astype(np.float32) * 100 + 200
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    shift = np.array([2.5, -1.5, 4.0])  # the moving content sits this far from the fixed (mm)
    coarse = np.diag([6.0, 6.0, 4.5, 1.0])
    coarse[:3, 3] = [6.0, 6.0, 12.0]
    import SimpleITK as sitk

    moving = resample(fixed, affine, (20, 16, 25), coarse, transform=sitk.TranslationTransform(3, (-shift).tolist()))
    result = register_station(Volume(fixed, affine), np.ones(fixed.shape, bool), Volume(moving, coarse))
    assert result.accepted and np.linalg.norm(np.array(result.translation_mm) - shift) < 0.5
    rejected = register_station(Volume(fixed, affine), np.ones(fixed.shape, bool), Volume(moving, coarse),
                                config=RegisterConfig(max_shift_mm=1.0))
    assert not rejected.accepted and rejected.translation_mm == (0.0, 0.0, 0.0) and "rejected" in rejected.stop


def test_adc_from_three_b_values_and_air():
    adc_true = np.full((4, 4, 4), 1.2e-3)
    s0 = np.full((4, 4, 4), 800.0)
    s0[0] = 0.5  # air: no signal
    images = {b: s0 * np.exp(-b * adc_true) for b in (0.0, 500.0, 1000.0)}
    adc = fit_adc(images)
    np.testing.assert_allclose(adc[1:], 1.2e-3, rtol=1e-5)
    assert (adc[0] == 0).all()
    with pytest.raises(ValueError, match="two or more distinct b-values"):
        fit_adc({1000.0: s0})


def test_nyul_maps_every_image_onto_the_learned_scale():
    rng = np.random.default_rng(4)
    images = [rng.gamma(2.0 + k, 100.0 * (k + 1), (20, 20, 20)) for k in range(3)]
    masks = [np.ones(i.shape, bool) for i in images]
    pct = (1.0, 10.0, 50.0, 90.0, 99.0)
    marks = [landmarks(i, m, pct) for i, m in zip(images, masks)]
    standard = fit_standard_scale(marks, scale=(0.0, 100.0))
    assert standard[0] == 0.0 and standard[-1] == 100.0 and np.all(np.diff(standard) > 0)
    for image, lm in zip(images, marks):
        mapped = apply_standard_scale(image, lm, standard)
        np.testing.assert_allclose(landmarks(mapped, np.ones(image.shape, bool), pct)[1:], standard[1:], rtol=1e-3, atol=1e-6)
        assert mapped.min() >= 0.0
