"""sapkit.metrics._lesion_matching: overlapping pairs and the hit rules on hand-built component maps."""

from __future__ import annotations

import numpy as np
import pytest

from sapkit.errors import MetricInputError
from sapkit.metrics._lesion_matching import match, overlaps, parse_hit


def _maps():
    g = np.array([[1, 1, 1, 1, 0, 2, 2, 0, 0]])  # lesion 1: 4 voxels, lesion 2: 2 voxels
    p = np.array([[0, 1, 1, 2, 2, 2, 0, 0, 3]])  # pred 1: 2, pred 2: 3 (bridges both lesions), pred 3: 1
    return g, p, np.array([0, 4, 2]), np.array([0, 2, 3, 1])


def test_overlaps_lists_every_pair_with_its_voxel_count():
    g, p, _, _ = _maps()
    gid, pid, inter = overlaps(g, p)
    assert list(zip(gid.tolist(), pid.tolist(), inter.tolist())) == [(1, 1, 2), (1, 2, 1), (2, 2, 1)]
    empty = overlaps(g, np.zeros_like(p))
    assert all(a.size == 0 for a in empty)


def test_any_rule_credits_every_overlap_and_iou_rule_is_one_to_one():
    g, p, g_sizes, p_sizes = _maps()
    gid, pid, inter = overlaps(g, p)
    matched, hit = match(2, 3, g_sizes, p_sizes, gid, pid, inter, parse_hit("any"))
    assert matched[1:] == [[1, 2], [2]] and hit.tolist() == [False, True, True, False]
    # IoU: (1,1) 2/4 = .5, (1,2) 1/6, (2,2) 1/4
    matched, hit = match(2, 3, g_sizes, p_sizes, gid, pid, inter, parse_hit("iou:0.25"))
    assert matched[1:] == [[1], [2]] and hit.tolist() == [False, True, True, False]
    matched, hit = match(2, 3, g_sizes, p_sizes, gid, pid, inter, parse_hit("iou:0.5"))
    assert matched[1:] == [[1], []] and hit.tolist() == [False, True, False, False]


def test_parse_hit():
    assert parse_hit("any") == ("any", 0.0) and parse_hit("iou:0.5") == ("iou", 0.5)
    for bad in ("iou:0", "iou:1.5", "iou:x", "dice:0.5", None):
        with pytest.raises(MetricInputError, match="hit rule"):
            parse_hit(bad)
