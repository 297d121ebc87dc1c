"""sapkit.training.patch_sampler: the machinery every patch sampler shares, and a pinned record of
every patch the three samplers serve (same patches, same order, same random draws)."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

import numpy as np
import pytest

from sapkit.config import LesionConfig
from sapkit.errors import ConfigError, SapkitError
from sapkit.training.lesion_sampler import InstanceBalancedSampler, PosNegSampler, build_sampler
from sapkit.training.patch_sampler import SamplerBase, centred_start, check_rank, deal, fit_inside, prepare_cases
from sapkit.training.skeleton_sampler import PatchSampler

# sha256 (first 16 hex digits) of every (image, label) patch served for epochs 0-2 on world sizes 1
# and 3, every rank. Recorded before the samplers shared SamplerBase; a change here means a resumed
# or reproduced run would train on other patches.
PINNED = {
    "skeleton": "231f75506429875b",
    "ssl": "c18eb0dcf5f90180",
    "instance_balanced": "6f55a899a3bbdb70",
    "posneg": "1f0065c61c904d15",
    "build_instance_balanced": "fa5b3cc81c3811bd",
    "build_posneg": "b6376faa527b77d0",
}


def _cohort() -> list[SimpleNamespace]:
    """Three scans with skeleton and lesion labels (one smaller than the ROIs: padded) and one lesion-free scan."""
    rng = np.random.default_rng(7)
    out = []
    for k, shape in enumerate([(30, 28, 40), (36, 30, 44), (12, 14, 20)]):
        image = (rng.random((2, *shape), dtype=np.float32) * 0.5).astype(np.float32)
        image[:, :3] = 0.0
        skeleton = np.zeros(shape, np.int16)
        skeleton[5:10, 5:12, 4:15] = 1
        skeleton[12:16, 3:9, 10:18] = 3 + k
        lesion = np.zeros(shape, np.uint8)
        if k == 0:
            lesion[4:7, 4:7, 4:7] = 1
            lesion[20, 20, 30] = lesion[21, 21, 31] = 1
        elif k == 2:
            lesion[6:8, 6:8, 10:12] = 1
        out.append(SimpleNamespace(scan_id=f"c{k}", image=image, skeleton=skeleton, lesion=lesion))
    out.append(SimpleNamespace(scan_id="neg", image=rng.random((2, 30, 30, 30), dtype=np.float32),
                               skeleton=np.zeros((30, 30, 30), np.int16), lesion=np.zeros((30, 30, 30), np.uint8)))
    return out


def _digest(make, epochs=(0, 1, 2)) -> str:
    """One digest over every rank (world sizes 1 and 3) and epoch of the sampler ``make(rank, world_size)``."""
    d = hashlib.sha256()
    for world_size in (1, 3):
        for rank in range(world_size):
            sampler = make(rank, world_size)
            for epoch in epochs:
                for image, label in sampler.epoch_samples(epoch):
                    assert not image.flags.writeable and (label is None or not label.flags.writeable)
                    d.update(repr((world_size, rank, epoch, image.shape, str(image.dtype))).encode())
                    d.update(np.ascontiguousarray(image).tobytes())
                    d.update(b"none" if label is None else repr((label.shape, str(label.dtype))).encode()
                             + np.ascontiguousarray(label).tobytes())
    return d.hexdigest()[:16]


def _samplers(cases):
    return {
        "skeleton": lambda r, w: PatchSampler(cases, roi=(16, 16, 16), samples_per_volume=5, label="skeleton", seed=3,
                                              rank=r, world_size=w),
        "ssl": lambda r, w: PatchSampler(cases, roi=(16, 16, 16), samples_per_volume=5, label=None, seed=3, rank=r,
                                         world_size=w),
        "instance_balanced": lambda r, w: InstanceBalancedSampler(cases, roi=(12, 12, 12), negative_ratio=1.5,
                                                                  margin_voxels=3, connectivity=6, seed=5, rank=r,
                                                                  world_size=w),
        "posneg": lambda r, w: PosNegSampler(cases, roi=(16, 16, 16), pos=1.0, neg=2.0, samples_per_case=3, seed=5,
                                             rank=r, world_size=w),
        "build_instance_balanced": lambda r, w: build_sampler(cases, LesionConfig(roi=(16, 16, 16)), seed=9, rank=r,
                                                              world_size=w),
        "build_posneg": lambda r, w: build_sampler(cases, LesionConfig(roi=(16, 16, 16), sampler="posneg"), seed=9,
                                                   rank=r, world_size=w),
    }


@pytest.mark.parametrize("name", sorted(PINNED))
def test_samplers_serve_the_pinned_patches(name):
    assert _digest(_samplers(_cohort())[name]) == PINNED[name]


def test_fit_inside_and_centred_start_keep_the_size():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n, size = int(rng.integers(5, 40)), int(rng.integers(1, 45))
        lo = int(rng.integers(-50, 50))
        a, b = fit_inside(lo, lo + size, n)
        assert 0 <= a <= b <= n and b - a == min(size, n)
        centre, roi = int(rng.integers(0, n)), int(rng.integers(1, n + 1))
        (start,) = centred_start((centre,), (roi,), (n,))
        assert 0 <= start <= n - roi and (start <= centre < start + roi or roi < 2)


def test_deal_covers_every_item_once_then_tops_up():
    order = np.array([4, 0, 3, 1, 2, 6, 5])
    hands = [deal(order, rank=r, world_size=3, count=3) for r in range(3)]
    assert hands == [[4, 1, 5], [0, 2, 4], [3, 6, 0]]
    served = [i for h in hands for i in h]
    assert sorted(set(served)) == list(range(7)) and len(served) == 9
    assert deal([1, 2], rank=2, world_size=4, count=1) == [1]  # more ranks than items: wrap around


def test_prepare_cases_pads_casts_and_lists_every_bad_case():
    good = SimpleNamespace(scan_id="a", image=np.ones((2, 3, 10, 5), np.float64), lesion=np.ones((3, 10, 5), np.uint8))
    images, labels, ids = prepare_cases([good], (4, 4, 4), label="lesion", hint="fix it")
    assert images[0].shape == (2, 4, 10, 5) and images[0].dtype == np.float32 and labels[0].shape == (4, 10, 5)
    assert images[0][:, 3].sum() == 0 and labels[0][3].sum() == 0 and ids == ["a"]
    assert prepare_cases([good], (4, 4, 4), label=None, hint="")[1] == [None]
    unlabelled = SimpleNamespace(scan_id="b", image=np.ones((2, 3, 3, 3), np.float32), lesion=None)
    wrong = SimpleNamespace(scan_id="c", image=np.ones((3, 3, 3), np.float32), lesion=np.ones((3, 3, 3), np.uint8))
    with pytest.raises(SapkitError, match=r"b: no lesion label \(lesion is None\); c: image shape \(3, 3, 3\) .* fix it"):
        prepare_cases([good, unlabelled, wrong], (4, 4, 4), label="lesion", hint="fix it")
    with pytest.raises(SapkitError, match="no cases given to the sampler; add patients"):
        prepare_cases([], (4, 4, 4), label="lesion", hint="add patients")


def test_sampler_base_checks_roi_and_rank_and_names_streams():
    case = SimpleNamespace(scan_id="a", image=np.zeros((1, 8, 8, 8), np.float32))
    with pytest.raises(ConfigError, match=r"roi must be 3 positive integers \(voxels\), got \(4, 4\)"):
        SamplerBase([case], roi=(4, 4), min_shape=(4, 4, 4), label=None, seed=0, rank=0, world_size=1, hint="")
    with pytest.raises(ConfigError, match="rank=2, world_size=2"):
        check_rank(2, 2)
    base = SamplerBase([case], roi=(4, 4, 4), min_shape=(4, 4, 4), label=None, seed=11, rank=0, world_size=1, hint="")
    assert base._rng(3, 1).random() == np.random.default_rng([11, 3, 1]).random()
    base._set_epoch_length(7)
    assert len(base) == 7
