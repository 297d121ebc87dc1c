"""Matching predicted components to GT lesions: overlapping pairs and the hit rules (``docs/metrics.md`` §4).

- ``"any"`` (default, the paper's rule): every predicted component overlapping a GT lesion by ≥ 1
  voxel is credited to it; a component may be credited to several lesions.
- ``"iou:T"``: one-to-one matching of the pairs with IoU ≥ T, greedily by decreasing IoU (ties:
  lower GT id, then lower prediction id).

A prediction credited to no GT lesion is a false positive. Component ids are 1-based (0 is
background), as :func:`sapkit.imaging.components.label_components` numbers them.
"""

from __future__ import annotations

import numpy as np

from sapkit.errors import MetricInputError

__all__ = ["overlaps", "parse_hit", "match"]


def overlaps(gt_labels: np.ndarray, pred_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(gt id, pred id, overlapping voxel count) for every overlapping pair of components."""
    both = (gt_labels > 0) & (pred_labels > 0)
    if not both.any():
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    g = gt_labels[both].astype(np.int64)
    p = pred_labels[both].astype(np.int64)
    key = g * (int(p.max()) + 1) + p
    uniq, counts = np.unique(key, return_counts=True)
    gid, pid = np.divmod(uniq, int(p.max()) + 1)
    return gid, pid, counts.astype(np.int64)


def parse_hit(hit: str) -> tuple[str, float]:
    """``"any"`` → ("any", 0); ``"iou:0.5"`` → ("iou", 0.5)."""
    if hit == "any":
        return "any", 0.0
    if isinstance(hit, str) and hit.startswith("iou:"):
        try:
            t = float(hit[4:])
        except ValueError:
            t = float("nan")
        if 0 < t <= 1:
            return "iou", t
    raise MetricInputError(f"hit rule must be 'any' or 'iou:T' with 0 < T ≤ 1 (e.g. 'iou:0.5'), got {hit!r}")


def match(n_gt: int, n_pred: int, gt_sizes: np.ndarray, pred_sizes: np.ndarray, gid: np.ndarray,
          pid: np.ndarray, inter: np.ndarray, rule: tuple[str, float]) -> tuple[list[list[int]], np.ndarray]:
    """Apply a hit rule to overlapping pairs (ids 1-based, sizes indexed by id).

    Returns
    -------
    matched : list of list of int
        ``matched[g]`` = prediction ids credited to GT lesion ``g`` (index 0 unused).
    pred_hit : (n_pred + 1,) bool
        True for predictions credited to a GT lesion (the others are false positives).
    """
    matched: list[list[int]] = [[] for _ in range(n_gt + 1)]
    pred_hit = np.zeros(n_pred + 1, dtype=bool)
    kind, t = rule
    if kind == "any":
        for g, p in zip(gid.tolist(), pid.tolist()):
            matched[g].append(p)
        pred_hit[pid] = True
        return matched, pred_hit
    iou = inter / (gt_sizes[gid] + pred_sizes[pid] - inter)
    candidates = np.flatnonzero(iou >= t)
    order = sorted(candidates.tolist(), key=lambda c: (-iou[c], gid[c], pid[c]))
    gt_used = np.zeros(n_gt + 1, dtype=bool)
    for c in order:
        g, p = int(gid[c]), int(pid[c])
        if gt_used[g] or pred_hit[p]:
            continue
        gt_used[g] = pred_hit[p] = True
        matched[g].append(p)
    return matched, pred_hit
