"""sapkit.training.skeleton_sampler: class-balanced skeleton patches and random SSL body patches."""

from __future__ import annotations

import numpy as np
import pytest

from sapkit.errors import ConfigError, SapkitError
from sapkit.training.skeleton_sampler import PatchSampler
from test_tasks import TRAIN, make_case


def test_patch_sampler_is_class_balanced_deterministic_and_sharded():
    s = PatchSampler(TRAIN, roi=(16, 16, 16), samples_per_volume=40, label="skeleton", seed=1)
    a, b = s.epoch_samples(0), s.epoch_samples(0)
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(a, b))
    assert not all(np.array_equal(x[0], y[0]) for x, y in zip(a, s.epoch_samples(1)))
    assert all(not x.flags.writeable and any(np.shares_memory(x, c.image) for c in TRAIN) for x, _ in a)  # views
    centre_bone = np.mean([lab[8, 8, 8] > 0 for _, lab in a])
    assert centre_bone > 0.6  # 3 of 4 classes are bones (uniform over classes) vs ~2 % of voxels
    ranks = [PatchSampler(TRAIN, roi=(16, 16, 16), samples_per_volume=3, label="skeleton", seed=1, rank=r,
                          world_size=4) for r in range(4)]
    assert [len(r) for r in ranks] == [2, 2, 2, 2] and all(len(r.epoch_samples(0)) == 2 for r in ranks)
    small = PatchSampler([make_case(3, shape=(10, 12, 20))], roi=(16, 16, 16), samples_per_volume=2, label=None, seed=0)
    assert [p[0].shape for p in small.epoch_samples(0)] == [(2, 16, 16, 16)] * 2 and small.epoch_samples(0)[0][1] is None


def test_patch_sampler_errors():
    with pytest.raises(ConfigError, match=r"roi must be 3 positive integers \(voxels\), got \(16, 16\)"):
        PatchSampler(TRAIN, roi=(16, 16), samples_per_volume=1, label="skeleton", seed=0)
    with pytest.raises(SapkitError, match="no cases given to the sampler; check splits.json healthy.train"):
        PatchSampler([], roi=(16, 16, 16), samples_per_volume=1, label="skeleton", seed=0)
    unlabelled = make_case(5)
    unlabelled.skeleton = None
    with pytest.raises(SapkitError, match=r"s5: no skeleton label \(skeleton is None\)"):
        PatchSampler([unlabelled], roi=(16, 16, 16), samples_per_volume=1, label="skeleton", seed=0)
