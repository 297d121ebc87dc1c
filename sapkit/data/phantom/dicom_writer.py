"""Write a volume as an MR DICOM series (one file per slice), as a scanner would.

Used by the synthetic raw cohort (:mod:`sapkit.data.phantom.raw`) and the tests; ``sapkit preprocess``
only reads DICOM (:mod:`sapkit.preprocessing.dicom`). Geometry follows
the DICOM patient frame (LPS mm): the volume is reoriented to L-P-S voxel axes, so
``ImageOrientationPatient`` is ``1\\0\\0\\0\\1\\0`` (rows run to the patient's left, columns to
posterior) for an axial acquisition, ``ImagePositionPatient`` is the centre of the first pixel of
each slice, ``PixelSpacing`` is (row spacing, column spacing). Files are numbered head first.
Intensities are stored as 12-bit unsigned integers with ``RescaleSlope`` (6 significant digits,
intercept 0): the decoded value of a voxel is ``stored × float(RescaleSlope)`` exactly, which is
what :func:`quantise` returns for the NIfTI copy of the same data.

Diffusion series may hold several b-values (one slice stack per b-value, interleaved instance
numbers). ``vendor`` chooses where the b-value goes: the standard ``DiffusionBValue`` (0018,9087),
Siemens' private (0019,100C), GE's (0043,1039) (first value + 10⁹, a GE convention) or Philips'
(2001,1003), so the reader's vendor fall-backs are exercised.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import nibabel as nib
import numpy as np
import numpy.typing as npt

__all__ = ["SeriesTags", "VENDOR_STYLES", "rescale_slope", "quantise", "write_dicom_series"]

VENDOR_STYLES = ("standard", "siemens", "ge", "philips")
_MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
_MAX_STORED = 4095
# Elements that change from slice to slice: SOPInstanceUID, InstanceNumber, ImagePositionPatient,
# SliceLocation, PixelData (the rest of a series is encoded once).
_PER_SLICE = (0x00080018, 0x00200013, 0x00200032, 0x00201041, 0x7FE00010)
_MANUFACTURER = {"standard": "SAPKIT", "siemens": "SIEMENS", "ge": "GE MEDICAL SYSTEMS", "philips": "Philips Medical Systems"}


@dataclass(frozen=True)
class SeriesTags:
    """Identity and description of one series (DICOM attribute values as strings)."""

    patient_id: str
    study_uid: str
    series_uid: str
    frame_of_reference_uid: str
    series_number: int
    description: str
    image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "M", "ND")
    study_date: str = "20240101"
    study_time: str = "090000"
    series_time: str = "090000"
    institution: str = "sapkit"
    repetition_time_ms: float = 600.0
    echo_time_ms: float = 10.0


def rescale_slope(values: list[npt.ArrayLike]) -> str:
    """The ``RescaleSlope`` (6 significant digits) that stores the largest value as 4095."""
    top = max(float(np.max(v)) for v in values)
    return f"{max(top, 1e-6) / _MAX_STORED:.6g}"


def quantise(volume: npt.ArrayLike, slope: str) -> npt.NDArray[np.float32]:
    """The values a reader decodes from ``volume`` stored with ``RescaleSlope = slope`` (float32)."""
    stored = np.clip(np.rint(np.asarray(volume, dtype=np.float64) / float(slope)), 0, _MAX_STORED)
    return (stored * float(slope)).astype(np.float32)


def _ds(value: float) -> str:
    """A DICOM decimal string (≤ 16 characters) for a coordinate in mm."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text if text not in ("-0", "") else "0"


def _b_value_elements(ds, b_value: float, vendor: str) -> None:
    if vendor in ("standard", "philips"):
        ds.DiffusionBValue = float(b_value)
    if vendor == "siemens":
        ds.private_block(0x0019, "SIEMENS MR HEADER", create=True).add_new(0x0C, "IS", str(int(round(b_value))))
        ds.SequenceName = f"*ep_b{int(round(b_value))}t"
    elif vendor == "ge":
        block = ds.private_block(0x0043, "GEMS_PARM_01", create=True)
        block.add_new(0x39, "IS", [str(1_000_000_000 + int(round(b_value))), "8", "0", "0"])
    elif vendor == "philips":
        ds.private_block(0x2001, "Philips Imaging DD 001", create=True).add_new(0x03, "FL", float(b_value))


def write_dicom_series(
    images: Mapping[float | None, npt.ArrayLike], affine: npt.ArrayLike, folder: str | Path, *,
    tags: SeriesTags, vendor: str = "standard", first_instance: int = 1,
) -> tuple[list[Path], str]:
    """Write one series: every volume in ``images`` (key = b-value in s/mm², or None) as slices.

    Parameters
    ----------
    images : mapping b-value → (X, Y, Z) array
        Non-negative intensities on one grid; ``None`` as key for a non-diffusion series.
    affine : (4, 4) array
        Voxel → world (RAS+ mm) matrix of the volumes; axis 2 must be the slice axis.
    folder : path
        Destination folder (created); files ``IM00001.dcm``, … (head first).
    tags : SeriesTags
    vendor : str
        Where diffusion b-values go (:data:`VENDOR_STYLES`).
    first_instance : int
        ``InstanceNumber`` of the first file (several stations of one series continue the count).

    Returns
    -------
    files : list of Path
    slope : str
        The ``RescaleSlope`` written (decoded value = stored × slope; see :func:`quantise`).
    """
    from pydicom.config import disable_value_validation
    from pydicom.uid import generate_uid

    if vendor not in VENDOR_STYLES:
        raise ValueError(f"vendor must be one of {VENDOR_STYLES}, got {vendor!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    affine = np.asarray(affine, dtype=np.float64)
    volumes = {b: np.asarray(v, dtype=np.float64) for b, v in images.items()}
    shape = next(iter(volumes.values())).shape
    ornt = nib.orientations.ornt_transform(nib.orientations.io_orientation(affine),
                                           nib.orientations.axcodes2ornt(("L", "P", "S")))
    lps_affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine @ nib.orientations.inv_ornt_aff(ornt, shape)
    slope = rescale_slope(list(volumes.values()))
    ds = _series_dataset(tags, vendor, lps_affine, shape, slope)
    files, instance = [], first_instance - 1
    with disable_value_validation():
        for b_value, volume in volumes.items():
            lps = nib.orientations.apply_orientation(volume, ornt)
            stored = np.clip(np.rint(lps / float(slope)), 0, _MAX_STORED).astype(np.uint16)
            if b_value is not None:
                _b_value_elements(ds, b_value, vendor)
            shared = {elem.tag: _encode(elem) for elem in ds}
            for k in reversed(range(shape[2])):  # head first, as scanners number them
                instance += 1
                uid = generate_uid(entropy_srcs=[tags.series_uid, str(instance)])
                ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = uid
                ds.InstanceNumber = instance
                position = lps_affine @ np.array([0.0, 0.0, k, 1.0])
                ds.ImagePositionPatient = [_ds(v) for v in position[:3]]
                ds.SliceLocation = _ds(position[2])
                ds[0x7FE00010].value = np.ascontiguousarray(stored[:, :, k].T).tobytes()  # rows = axis 1, columns = axis 0
                elements = dict(shared)
                elements.update({tag: _encode(ds[tag]) for tag in _PER_SLICE})
                path = folder / f"IM{instance:05d}.dcm"
                path.write_bytes(b"\0" * 128 + b"DICM" + _encode_meta(ds.file_meta)
                                 + b"".join(elements[t] for t in sorted(elements)))
                files.append(path)
    return files, slope


def _encode(elem) -> bytes:
    """One data element as explicit-VR little-endian bytes."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_data_element

    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_data_element(fp, elem)
    return fp.getvalue()


def _encode_meta(meta) -> bytes:
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_file_meta_info

    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_file_meta_info(fp, meta, enforce_standard=True)
    return fp.getvalue()


def _series_dataset(tags: SeriesTags, vendor: str, lps_affine: npt.NDArray, shape, slope: str):
    """The attributes shared by every slice of a series (per-slice ones are set while writing)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    spacing = np.sqrt((lps_affine[:3, :3] ** 2).sum(axis=0))
    row_dir, col_dir = lps_affine[:3, 0] / spacing[0], lps_affine[:3, 1] / spacing[1]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = _MR_STORAGE
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = _MR_STORAGE
    ds.Modality, ds.Manufacturer, ds.InstitutionName = "MR", _MANUFACTURER[vendor], tags.institution
    ds.PatientID, ds.PatientName, ds.PatientPosition = tags.patient_id, tags.patient_id, "HFS"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = tags.study_uid, tags.series_uid
    ds.FrameOfReferenceUID = tags.frame_of_reference_uid
    ds.StudyDate, ds.StudyTime = tags.study_date, tags.study_time
    ds.SeriesDate, ds.SeriesTime = tags.study_date, tags.series_time
    ds.SeriesNumber, ds.AcquisitionNumber = tags.series_number, 1
    ds.SeriesDescription = ds.ProtocolName = tags.description
    ds.ImageType = list(tags.image_type)
    ds.RepetitionTime, ds.EchoTime = tags.repetition_time_ms, tags.echo_time_ms
    ds.ImageOrientationPatient = [_ds(v) for v in np.concatenate([row_dir, col_dir])]
    ds.PixelSpacing = [_ds(spacing[1]), _ds(spacing[0])]
    ds.SliceThickness = ds.SpacingBetweenSlices = _ds(spacing[2])
    ds.Rows, ds.Columns = shape[1], shape[0]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = slope, "0", "US"
    ds.add_new(0x7FE00010, "OW", b"")
    return ds
