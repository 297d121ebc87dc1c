"""Tests of sapkit.training.lesion_boxes and sapkit.training.lesion_sampler (issue 5, acceptance 1).

Lesion components are counted with 26-connectivity (face, edge and corner neighbours), the
kit's default; one test pins that a diagonal chain is one lesion at 26 and several at 6.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from sapkit.config import LesionConfig
from sapkit.errors import ConfigError, SapkitError
from sapkit.training.lesion_boxes import negative_windows, positive_boxes, window_size
from sapkit.training.lesion_sampler import InstanceBalancedSampler, PosNegSampler, build_sampler

ROI = (16, 16, 16)  # window 22, stride 11


def _case(scan_id: str, lesion: np.ndarray, seed: int = 0) -> SimpleNamespace:
    rng = np.random.default_rng(seed)
    image = rng.random((2, *lesion.shape), dtype=np.float32)
    return SimpleNamespace(scan_id=scan_id, image=image, lesion=lesion)


def _cases() -> list[SimpleNamespace]:
    a = np.zeros((40, 36, 80), np.uint8)
    a[5:8, 5:8, 5:8] = 1                       # lesion 1 (cube)
    a[20, 20, 40] = a[21, 21, 41] = a[22, 22, 42] = 1  # lesion 2: diagonal chain (1 at 26-conn, 3 at 6-conn)
    a[30:33, 10:12, 70:75] = 1                 # lesion 3
    b = np.zeros((30, 30, 60), np.uint8)
    b[10:14, 10:14, 30:33] = 1                 # lesion 4
    b[25, 5, 5] = 1                            # lesion 5 (single voxel)
    c = np.zeros((30, 30, 60), np.uint8)       # patient with an empty mask: negatives only
    return [_case("a", a, 1), _case("b", b, 2), _case("c", c, 3)]


def _key(box) -> tuple:
    return (box.case_index, box.start, box.stop, box.component)


def test_window_size_is_four_thirds_of_roi():
    assert window_size((96, 96, 96)) == (128, 128, 128)
    assert window_size((64, 48, 32)) == (86, 64, 43)


def test_one_positive_per_26_connected_component():
    sampler = InstanceBalancedSampler(_cases(), roi=ROI, seed=1)
    assert len(sampler.positives) == 5
    assert sorted((b.case_index, b.component) for b in sampler.positives) == [(0, 1), (0, 2), (0, 3), (1, 1), (1, 2)]
    six = InstanceBalancedSampler(_cases(), roi=ROI, seed=1, connectivity=6)
    assert len(six.positives) == 7  # the diagonal chain splits into 3 lesions


def test_positive_box_contains_lesion_with_margin_and_window():
    lesion = np.zeros((60, 60, 60), np.uint8)
    lesion[20:40, 28:30, 1:3] = 1  # 20 voxels long in X, touches the low Z border
    (box,) = positive_boxes(lesion, roi=ROI, margin_voxels=10)
    assert box.start[0] == 10 and box.stop[0] == 50        # bbox + 10-voxel margin (40 ≥ 22)
    assert box.size[1] == 22 and box.start[1] <= 18 and box.stop[1] >= 40  # grown to the window
    assert box.start[2] == 0 and box.size[2] == 22          # shifted inside, not shrunk
    inside = lesion[box.slices()].sum()
    assert inside == lesion.sum()


def test_negatives_contain_no_lesion_voxel_and_cover_the_grid():
    lesion = np.zeros((44, 33, 55), np.uint8)
    lesion[2, 2, 2] = 1
    wins = negative_windows(lesion, roi=ROI)
    # starts per axis: X 0,11,22 ; Y 0,11 ; Z 0,11,22,33 → 24 windows, those with (0,0,0) corner removed
    all_starts = {(x, y, z) for x in (0, 11, 22) for y in (0, 11) for z in (0, 11, 22, 33)}
    assert {w.start for w in wins} == {s for s in all_starts if not (s[0] == 0 and s[1] == 0 and s[2] == 0)}
    assert all(w.size == (22, 22, 22) for w in wins)
    sampler = InstanceBalancedSampler(_cases(), roi=ROI, seed=3)
    assert len(sampler.negatives) > 20
    for w in sampler.negatives:
        assert sampler._labels[w.case_index][w.slices()].max() == 0


def test_epoch_composition_and_crops():
    sampler = InstanceBalancedSampler(_cases(), roi=ROI, negative_ratio=2.0, seed=4)
    plan = sampler.epoch_plan(0)
    assert len(plan) == len(sampler) == 15
    assert sorted(_key(b) for b in plan if b.is_positive) == sorted(_key(b) for b in sampler.positives)
    samples = sampler.epoch_samples(0)
    for (image, label), box in zip(samples, plan):
        assert image.shape == (2, *ROI) and image.dtype == np.float32
        assert label.shape == ROI and label.dtype == np.uint8
        assert not image.flags.writeable
        if not box.is_positive:
            assert label.max() == 0
    # Crops are views into the case arrays (no copies): the base is the case image.
    assert np.shares_memory(samples[0][0], sampler._images[plan[0].case_index])


def test_negatives_are_fresh_every_epoch_and_reproducible_on_resume():
    cases = _cases()
    first = InstanceBalancedSampler(cases, roi=ROI, seed=42)
    negs = {e: sorted(_key(b) for b in first.epoch_plan(e) if not b.is_positive) for e in range(4)}
    assert negs[0] != negs[1] and negs[1] != negs[2]
    resumed = InstanceBalancedSampler(cases, roi=ROI, seed=42)  # a new object, as after a restart
    for e in (1, 3):
        assert sorted(_key(b) for b in resumed.epoch_plan(e) if not b.is_positive) == negs[e]
        for (ia, la), (ib, lb) in zip(first.epoch_samples(e), resumed.epoch_samples(e)):
            np.testing.assert_array_equal(ia, ib)
            np.testing.assert_array_equal(la, lb)
    other_seed = InstanceBalancedSampler(cases, roi=ROI, seed=43)
    assert sorted(_key(b) for b in other_seed.epoch_plan(1) if not b.is_positive) != negs[1]


def test_random_crop_offsets_vary():
    lesion = np.zeros((64, 64, 64), np.uint8)
    lesion[30, 30, 30] = 1
    sampler = InstanceBalancedSampler([_case("x", lesion)], roi=ROI, negative_ratio=0.0, seed=0)
    where = set()
    for e in range(12):
        (_, label), = sampler.epoch_samples(e)
        assert label.sum() == 1  # box [20, 42) per axis: every 16-voxel crop holds voxel 30
        where.add(tuple(int(v[0]) for v in np.nonzero(label)))
    assert len(where) > 3


@pytest.mark.parametrize("world_size", [2, 3])
def test_ddp_ranks_split_positives_without_overlap(world_size):
    cases = _cases()
    ranks = [InstanceBalancedSampler(cases, roi=ROI, seed=7, rank=r, world_size=world_size) for r in range(world_size)]
    assert len({len(s) for s in ranks}) == 1  # same number of steps on every rank
    for epoch in (0, 1):
        plans = [s.epoch_plan(epoch) for s in ranks]
        pos = [_key(b) for p in plans for b in p if b.is_positive]
        assert len(pos) == len(set(pos)) == 5  # no overlap, all covered
        assert set(pos) == {_key(b) for b in ranks[0].positives}
        neg = [_key(b) for p in plans for b in p if not b.is_positive]
        assert len(neg) == len(set(neg))  # negatives not duplicated across ranks either
        assert len(neg) == world_size * len(ranks[0]) - 5


def test_small_volume_is_padded():
    lesion = np.zeros((10, 30, 12), np.uint8)
    lesion[4, 2, 5] = 1
    sampler = InstanceBalancedSampler([_case("small", lesion)], roi=ROI, seed=0)
    assert sampler._labels[0].shape == (22, 30, 22)
    for image, label in sampler.epoch_samples(0):
        assert image.shape == (2, *ROI)
    lesion[4, 10, 5] = 1  # now every (22, 22, 22) window of the padded volume holds a lesion
    with pytest.raises(SapkitError, match="no lesion-free"):
        InstanceBalancedSampler([_case("small", lesion)], roi=ROI, seed=0)
    assert len(InstanceBalancedSampler([_case("small", lesion)], roi=ROI, negative_ratio=0.0)) == 2


def test_posneg_sampler():
    cases = _cases()
    sampler = PosNegSampler(cases, roi=ROI, pos=1.0, neg=0.0, samples_per_case=3, seed=0)
    samples = sampler.epoch_samples(0)
    assert len(samples) == len(sampler) == 9
    assert [int(lab.max()) for _, lab in samples] == [1] * 6 + [0] * 3  # case c has no lesion
    only_neg = PosNegSampler(cases, roi=ROI, pos=0.0, neg=1.0, seed=0)
    centres = [lab[8, 8, 8] for _, lab in only_neg.epoch_samples(0)]
    assert all(c == 0 for c in centres)
    a = [lab.copy() for _, lab in PosNegSampler(cases, roi=ROI, seed=5).epoch_samples(2)]
    b = [lab.copy() for _, lab in PosNegSampler(cases, roi=ROI, seed=5).epoch_samples(2)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    r0 = PosNegSampler(cases, roi=ROI, seed=5, rank=0, world_size=2)
    assert len(r0) == 3


def test_build_sampler_from_config():
    cfg = LesionConfig(roi=ROI)
    assert isinstance(build_sampler(_cases(), cfg, seed=1), InstanceBalancedSampler)
    cfg = LesionConfig(roi=ROI, sampler="posneg")
    assert isinstance(build_sampler(_cases(), cfg, seed=1), PosNegSampler)


def test_errors_name_the_problem():
    with pytest.raises(ConfigError, match=r"connectivity must be one of \(6, 18, 26\)"):
        InstanceBalancedSampler(_cases(), roi=ROI, connectivity=8)
    with pytest.raises(ConfigError, match="roi must be 3 positive integers"):
        InstanceBalancedSampler(_cases(), roi=(16, 16))
    with pytest.raises(ConfigError, match="rank"):
        InstanceBalancedSampler(_cases(), roi=ROI, rank=2, world_size=2)
    with pytest.raises(ConfigError, match="negative_ratio"):
        InstanceBalancedSampler(_cases(), roi=ROI, negative_ratio=-1)
    healthy = SimpleNamespace(scan_id="h1", image=np.zeros((2, 30, 30, 30), np.float32), lesion=None)
    with pytest.raises(SapkitError, match=r"h1: no lesion label \(lesion is None\)"):
        InstanceBalancedSampler([healthy], roi=ROI)
    empty = _case("e", np.zeros((30, 30, 30), np.uint8))
    with pytest.raises(SapkitError, match="no lesion voxel in any of the 1 cases"):
        InstanceBalancedSampler([empty], roi=ROI)
