"""Enhanced (multi-frame) MR DICOM: per-frame geometry, b-values and image classes, and a selection of frames as a volume.

An Enhanced MR file holds every slice of a series as *frames*; what a classic file carries at the
top level lives in functional groups, per frame (``PerFrameFunctionalGroupsSequence``) or shared by
all frames (``SharedFunctionalGroupsSequence``): the frame's position (``PlanePositionSequence`` →
``ImagePositionPatient``), orientation (``PlaneOrientationSequence``), pixel spacing
(``PixelMeasuresSequence``), rescale (``PixelValueTransformationSequence``) and, for diffusion,
``MRDiffusionSequence`` → ``DiffusionBValue`` (s/mm²) and the image class, value 4 ("Derived Pixel
Contrast": IN_PHASE, OUT_PHASE, WATER, FAT, …) of ``MRImageFrameTypeSequence`` → ``FrameType``, the
top-level ``ImageType`` standing in when it is not MIXED. A per-frame group wins over a shared one.

One file may hold several images (the b-values of a DWI station; the in-phase, opposed-phase,
water and fat images of a Dixon station). A :class:`FrameSelector` names the frames of one image;
:class:`FrameFile` is a file path that carries its selector from the sort
(:mod:`sapkit.preprocessing.dicom`) to the conversion (:mod:`sapkit.preprocessing.convert`), through
code that only sees paths. :func:`frame_headers` lists the frames of a header (read without pixel
data); :func:`read_enhanced_volume` reads the selected frames as a volume. Positions are in the
DICOM patient frame (LPS mm).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

import nibabel as nib
import numpy as np

from sapkit.errors import SapkitError

__all__ = ["FUNCTIONAL_GROUP_TAGS", "DIXON_FRAME_CLASSES", "FrameSelector", "FrameFile", "frame_selection", "is_enhanced",
           "frame_headers", "read_enhanced_volume"]

#: Top-level elements a header-only read needs for the per-frame values.
FUNCTIONAL_GROUP_TAGS = ["PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence"]
_B_TOLERANCE = 0.5  # s/mm²: frames within this of the asked b-value are selected
_REGULAR = 0.01  # relative spread of slice steps tolerated in one stack
#: Frame classes (FrameType value 4) a series is split by: in-phase (the T1), opposed-phase (not used), water, fat.
DIXON_FRAME_CLASSES = ("IN_PHASE", "OUT_PHASE", "WATER", "FAT")


@dataclass(frozen=True)
class FrameSelector:
    """The frames of an Enhanced file that make one image: ``b_value`` (s/mm², within 0.5) and
    ``image_class`` (FrameType value 4, e.g. ``WATER``); None selects any."""

    b_value: float | None = None
    image_class: str | None = None

    def picks(self, header: dict) -> bool:
        """Whether a :func:`frame_headers` record belongs to the selection."""
        if self.b_value is not None and (header["b_value"] is None or abs(header["b_value"] - self.b_value) > _B_TOLERANCE):
            return False
        return self.image_class is None or header["image_class"] == self.image_class

    def __str__(self) -> str:
        parts = ([f"with b = {self.b_value:g} s/mm²"] if self.b_value is not None else []) + \
            ([f"of class {self.image_class}"] if self.image_class is not None else [])
        return " ".join(parts) or "any"


class FrameFile(str):
    """The path of an Enhanced file (a ``str``: ``os.stat``, links and digests see the path) and the
    :class:`FrameSelector` of the frames one image is made of (``frames``)."""

    frames: FrameSelector

    def __new__(cls, path: str, frames: FrameSelector) -> "FrameFile":
        obj = super().__new__(cls, path)
        obj.frames = frames
        return obj

    def __reduce__(self):  # pickled with its selector (scans are sent to worker processes)
        return FrameFile, (str(self), self.frames)

    def __repr__(self) -> str:
        return f"FrameFile({str(self)!r}, {self.frames!r})"


def frame_selection(files: Sequence[str], b_value: float | None = None) -> FrameSelector | None:
    """The frames an image is made of: the selector its :class:`FrameFile` paths carry, with
    ``b_value`` (s/mm²) when given; None when nothing is selected (the whole files)."""
    found = {f.frames for f in files if isinstance(f, FrameFile)}
    if len(found) > 1:
        raise SapkitError(f"files {[str(f) for f in files]} name different frames ({sorted(map(str, found))}); "
                          "one image is one selection of frames")
    selector = found.pop() if found else FrameSelector()
    selector = replace(selector, b_value=b_value) if b_value is not None else selector
    return None if selector == FrameSelector() else selector


def is_enhanced(ds: Any) -> bool:
    """True when the header holds per-frame functional groups (Enhanced or Legacy Converted Enhanced MR)."""
    return bool(ds.get("PerFrameFunctionalGroupsSequence"))


def _group(ds: Any, frame: Any, name: str) -> Any:
    """The first item of functional group ``name`` for a frame: per-frame first, then shared; None if absent."""
    for source in (frame, (ds.get("SharedFunctionalGroupsSequence") or [None])[0]):
        items = source.get(name) if source is not None else None
        if items:
            return items[0]
    return None


def _floats(value: Any, n: int) -> tuple[float, ...] | None:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return out if len(out) == n else None


def _words(value: Any) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(str(w).strip().upper() for w in (value.split("\\") if isinstance(value, str) else value))


def _frame_type(ds: Any, frame: Any) -> tuple[str, ...]:
    """FrameType of a frame (per-frame, then shared group), else the top-level ImageType unless its value 4 is MIXED."""
    item = _group(ds, frame, "MRImageFrameTypeSequence")
    words = _words(item.get("FrameType") if item is not None else None)
    if not words:
        words = _words(ds.get("ImageType"))
        words = () if len(words) > 3 and words[3] == "MIXED" else words
    return words


def frame_headers(ds: Any, rules: Any) -> list[dict]:
    """One record per frame: ``position`` (LPS mm), ``orientation`` (6 direction cosines), ``spacing``
    (row, column spacing in mm), ``b_value`` (s/mm², None when absent), ``b_source``, ``frame_type``
    (its FrameType words) and ``image_class`` (FrameType value 4; "" when absent).

    The b-value is read by ``rules`` (:meth:`sapkit.preprocessing.rules.Rules.b_value`) from the
    frame's ``MRDiffusionSequence`` item, then the frame item itself (vendor tags), then the top level.
    """
    records = []
    for frame in ds.PerFrameFunctionalGroupsSequence:
        position = _group(ds, frame, "PlanePositionSequence")
        orientation = _group(ds, frame, "PlaneOrientationSequence")
        measures = _group(ds, frame, "PixelMeasuresSequence")
        b_value, b_source = None, ""
        for where in (_group(ds, frame, "MRDiffusionSequence"), frame, ds):
            if where is not None:
                b_value, b_source = rules.b_value(where)
                if b_value is not None:
                    b_source = f"{b_source}, per frame" if where is not ds else b_source
                    break
        frame_type = _frame_type(ds, frame)
        records.append({
            "frame_type": frame_type, "image_class": frame_type[3] if len(frame_type) > 3 else "",
            "position": _floats(position.get("ImagePositionPatient") if position is not None else None, 3),
            "orientation": _floats(orientation.get("ImageOrientationPatient") if orientation is not None else None, 6),
            "spacing": _floats(measures.get("PixelSpacing") if measures is not None else None, 2),
            "b_value": b_value, "b_source": b_source})
    return records


def _rescale(ds: Any, frame: Any) -> tuple[float, float]:
    item = _group(ds, frame, "PixelValueTransformationSequence")
    where = item if item is not None and "RescaleSlope" in item else ds
    return float(where.get("RescaleSlope", 1) or 1), float(where.get("RescaleIntercept", 0) or 0)


def read_enhanced_volume(files: Sequence[str], *, frames: FrameSelector | None, rules: Any,
                         what: str) -> nib.Nifti1Image:
    """The frames of ``files`` (Enhanced MR) that ``frames`` selects (all frames when None) as one volume.

    Frames are sorted along the slice normal; rescale slope/intercept are applied per frame.
    Returns a NIfTI image in RAS+ world coordinates (float32 values, axes column, row, slice).

    Raises
    ------
    SapkitError
        No frame selected, frames of several image classes, frames without position/orientation,
        repeated or irregular slice positions, frames of different grids; the message names ``what``
        and the fix.
    """
    import pydicom

    picked = []
    for path in files:
        ds = pydicom.dcmread(path)
        if not is_enhanced(ds):
            raise SapkitError(f"{what}: {path} is not an Enhanced (multi-frame) MR file; convert it with dcm2niix")
        pixels = np.asarray(ds.pixel_array)
        pixels = pixels[None] if pixels.ndim == 2 else pixels
        for k, (frame, header) in enumerate(zip(ds.PerFrameFunctionalGroupsSequence, frame_headers(ds, rules))):
            if frames is not None and not frames.picks(header):
                continue
            slope, intercept = _rescale(ds, frame)
            picked.append((header, pixels[k].astype(np.float64) * slope + intercept))
    if not picked:
        at = f"{frames} " if frames else ""
        raise SapkitError(f"{what}: no frame {at}in {[str(f) for f in files]}; check the b-values and frame "
                          "classes (qc/series.csv) or convert the file with dcm2niix")
    headers = [h for h, _ in picked]
    classes = sorted({h["image_class"] for h in headers} & set(DIXON_FRAME_CLASSES))
    if len(classes) > 1:
        raise SapkitError(f"{what}: frames of {len(classes)} image classes ({', '.join(classes)}) in one image; "
                          "let `sapkit preprocess` sort the tree (it splits the series per class) or export a series per class")
    if any(h["position"] is None or h["orientation"] is None or h["spacing"] is None for h in headers):
        raise SapkitError(f"{what}: frames without PlanePosition/PlaneOrientation/PixelMeasures cannot be placed in "
                          "space; convert the file with dcm2niix")
    if len({(tuple(np.round(h["orientation"], 4)), tuple(np.round(h["spacing"], 4))) for h in headers}) > 1:
        raise SapkitError(f"{what}: frames of several orientations or pixel spacings in one stack; "
                          "split the series (dcm2niix) before sorting it")
    o = np.asarray(headers[0]["orientation"])
    normal = np.cross(o[:3], o[3:])
    order = np.argsort([float(np.dot(normal, h["position"])) for h in headers])
    z = np.array([float(np.dot(normal, headers[i]["position"])) for i in order])
    steps = np.diff(z)
    if len(z) < 2 or (steps < 1e-3).any() or np.ptp(steps) > _REGULAR * float(np.median(steps)):
        raise SapkitError(f"{what}: {len(z)} frame(s) at repeated or irregular positions (steps "
                          f"{np.round(steps, 3).tolist()[:5]} mm); one image (b-value, class) of one station must be one regular stack")
    volume = np.stack([picked[i][1] for i in order], axis=-1).transpose(1, 0, 2)  # (column, row, slice)
    row_mm, col_mm = headers[0]["spacing"]
    first, last = np.asarray(headers[order[0]]["position"]), np.asarray(headers[order[-1]]["position"])
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1] = o[:3] * col_mm, o[3:] * row_mm
    lps[:3, 2] = (last - first) / (len(z) - 1)
    lps[:3, 3] = first
    return nib.Nifti1Image(volume.astype(np.float32), np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps)
