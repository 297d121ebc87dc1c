"""sapkit.data.augment: docs/method.md §4.3 augmentation, seeded from (seed, epoch, index)."""

from __future__ import annotations

import numpy as np
import pytest

from sapkit.data.augment import AugmentParams, apply_augment, augment, augment_rng, sample_augment
from sapkit.config import AugmentConfig
from sapkit.errors import ConfigError

CFG = AugmentConfig()


def test_same_seed_same_draw_and_no_global_rng():
    np.random.seed(0)
    before = np.random.get_state()[1].copy()
    a = sample_augment(augment_rng(42, 3, 7), CFG, spatial_shape=(8, 8, 8))
    b = sample_augment(augment_rng(42, 3, 7), CFG, spatial_shape=(8, 8, 8))
    assert a == b
    assert np.array_equal(np.random.get_state()[1], before)
    draws = {sample_augment(augment_rng(42, 3, i), CFG, spatial_shape=(8, 8, 8)) for i in range(50)}
    assert len(draws) > 10


def test_probabilities_match_spec():
    n = 4000
    p = [sample_augment(augment_rng(1, 0, i), CFG, spatial_shape=(8, 8, 8)) for i in range(n)]
    for ax in range(3):
        assert np.mean([ax in q.flip_axes for q in p]) == pytest.approx(0.5, abs=0.03)
    assert np.mean([q.rot_k > 0 for q in p]) == pytest.approx(0.2, abs=0.02)
    assert {q.rot_k for q in p} == {0, 1, 2, 3}
    assert np.mean([q.scale != 1.0 for q in p]) == pytest.approx(0.1, abs=0.015)
    assert np.mean([q.shift != 0.0 for q in p]) == pytest.approx(0.1, abs=0.015)
    assert max(abs(q.scale - 1) for q in p) <= 0.1 and max(abs(q.shift) for q in p) <= 0.1


def test_image_and_label_move_together():
    rng = np.random.default_rng(0)
    label = rng.integers(0, 5, (6, 6, 6)).astype(np.int16)
    image = np.stack([label.astype(np.float32), -label.astype(np.float32)])
    img0, lab0 = image.copy(), label.copy()
    for i in range(30):
        out_img, out_lab = augment(image, label, AugmentConfig(scale_prob=0, shift_prob=0, rot90_prob=0.5),
                                   rng=augment_rng(0, 0, i))
        assert np.array_equal(out_img[0], out_lab.astype(np.float32))
        assert np.array_equal(out_img[1], -out_lab.astype(np.float32))
    assert np.array_equal(image, img0) and np.array_equal(label, lab0)  # inputs untouched


def test_hand_computed_ops():
    image = np.arange(2 * 2 * 3 * 3, dtype=np.float32).reshape(2, 2, 3, 3)
    label = np.arange(2 * 3 * 3).reshape(2, 3, 3)
    img, lab = apply_augment(image, label, AugmentParams(flip_axes=(0,)))
    assert np.array_equal(lab, label[::-1]) and np.array_equal(img, image[:, ::-1])
    img, lab = apply_augment(image, label, AugmentParams(rot_k=1, rot_axes=(1, 2), scale=1.1, shift=-0.1))
    assert np.array_equal(lab, np.rot90(label, 1, axes=(1, 2)))
    np.testing.assert_allclose(img, np.rot90(image, 1, axes=(2, 3)) * 1.1 - 0.1, rtol=1e-6)


def test_rotation_only_in_square_planes():
    p = [sample_augment(augment_rng(2, 0, i), AugmentConfig(rot90_prob=1.0), spatial_shape=(4, 4, 7)) for i in range(100)]
    assert {q.rot_axes for q in p} == {(0, 1)}
    p = [sample_augment(augment_rng(2, 0, i), AugmentConfig(rot90_prob=1.0), spatial_shape=(3, 4, 5)) for i in range(20)]
    assert all(q.rot_k == 0 for q in p)


def test_errors():
    with pytest.raises(ConfigError, match=r"augment.flip_prob must be in \[0, 1\]"):
        sample_augment(augment_rng(0, 0, 0), AugmentConfig(flip_prob=1.5), spatial_shape=(4, 4, 4))
    with pytest.raises(ConfigError, match="label shape"):
        apply_augment(np.zeros((2, 4, 4, 4), np.float32), np.zeros((4, 4, 3)), AugmentParams())
