"""Paint a posed body (parts list) onto a voxel grid: tissue map and fine-atlas label map."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from sapkit.data.phantom._anatomy import Z_BOTTOM, Z_TOP, Part, Pose, SubjectParams, joints
from sapkit.data.phantom._shapes import Grid, transform_shape

__all__ = ["segment_maps", "render_body"]

_CENTRE_Z = 0.5 * (Z_TOP + Z_BOTTOM)
_STRUCT6 = ndimage.generate_binary_structure(3, 1)


def segment_maps(sp: SubjectParams, pose: Pose, grid: Grid) -> dict[str, tuple[np.ndarray, float, np.ndarray]]:
    """(rotation, scale, shift) of the canonical → world similarity of every body segment.

    The canonical skull base ``Z_TOP`` sits one voxel below the top of the grid for every subject;
    the global pose rotates about the canonical mid-body point and then shifts (mm). A limb is first
    rotated about its joint centre by ``pose.limbs[key]``.
    """
    s = sp.scale
    top_world = grid.origin_mm[2] + grid.spacing_mm * (grid.shape[2] - 1.5)
    anchor = np.array([0.0, 0.0, top_world - (Z_TOP - _CENTRE_Z) * s])  # world of canonical centre
    c = np.array([0.0, 0.0, _CENTRE_Z])
    out = {}
    for key in ("trunk", "arm_L", "arm_R", "leg_L", "leg_R"):
        rl = np.asarray(pose.limbs.get(key, np.eye(3))) if key != "trunk" else np.eye(3)
        j = joints()[key] if key != "trunk" else np.zeros(3)
        rot = pose.rot @ rl
        shift = pose.rot @ (s * (j - rl @ j - c)) + anchor + pose.shift_mm
        out[key] = (rot, s, shift)
    return out


def _paint_bone(part: Part, shapes, grid: Grid, tissue, label, bone, cortex_id: int, marrow_id: int) -> None:
    masks = [m for m in (sh.mask(grid) for sh in shapes) if m is not None]
    if not masks:
        return
    lo = np.min([[s.start for s in sl] for sl, _ in masks], axis=0)
    hi = np.max([[s.stop for s in sl] for sl, _ in masks], axis=0)
    lo_p, hi_p = np.maximum(lo - 1, 0), np.minimum(hi + 1, grid.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo_p, hi_p))
    union = np.zeros(tuple(hi_p - lo_p), dtype=bool)
    for sl, m in masks:
        sub = tuple(slice(s.start - o, s.stop - o) for s, o in zip(sl, lo_p))
        union[sub] |= m
    interior = ndimage.binary_erosion(union, structure=_STRUCT6)
    t, lab, bn = tissue[box], label[box], bone[box]
    t[union] = cortex_id
    t[interior] = marrow_id
    lab[union] = part.label
    bn[union] = True


def render_body(parts: list[Part], sp: SubjectParams, pose: Pose, grid: Grid, *, cortex_id: int,
                marrow_id: int) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8], npt.NDArray[np.bool_]]:
    """Rasterise the posed parts.

    Returns
    -------
    tissue : (X, Y, Z) uint8
        Tissue class per voxel (``Tissue``).
    fine_label : (X, Y, Z) uint8
        Fine-atlas label per voxel (0 outside labelled bones and discs).
    bone : (X, Y, Z) bool
        Every bone voxel, labelled or not (forearm, tibia and patella are unlabelled).
    """
    maps = segment_maps(sp, pose, grid)
    tissue = np.zeros(grid.shape, np.uint8)
    label = np.zeros(grid.shape, np.uint8)
    bone = np.zeros(grid.shape, bool)
    for part in parts:
        rot, scale, shift = maps[part.segment]
        shapes = [transform_shape(sh, scale=scale, rot=rot, shift=shift) for sh in part.shapes]
        if part.kind == "bone":
            _paint_bone(part, shapes, grid, tissue, label, bone, cortex_id, marrow_id)
            continue
        for sh in shapes:
            hit = sh.mask(grid)
            if hit is None:
                continue
            sl, m = hit
            if part.protect_bone:
                m = m & ~bone[sl]
            tissue[sl][m] = part.tissue
            label[sl][m] = part.label
    return tissue, label, bone
