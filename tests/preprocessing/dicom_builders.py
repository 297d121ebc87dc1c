"""Enhanced (multi-frame) MR files built from classic single-frame files, shared by the preprocessing tests.

The frames are the classic slices as written (pixel data copied byte for byte), in the order
given; position per frame, orientation and pixel spacing shared, rescale shared when every slice
has the same slope and intercept and per frame otherwise, a b-value per frame
(``MRDiffusionSequence``) and a FrameType per frame (``MRImageFrameTypeSequence``) when asked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pydicom

__all__ = ["ENHANCED_MR", "enhanced_from_classic"]

ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"
_COPIED = ("Modality", "PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SeriesNumber", "SeriesDescription",
           "ImageType", "StudyDate", "StudyTime", "InstitutionName", "Rows", "Columns", "SamplesPerPixel",
           "PhotometricInterpretation", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation")


def enhanced_from_classic(files: Sequence[Path], out: Path, *, per_frame_b: bool,
                          frame_types: Sequence[Sequence[str]] | None = None, image_type: Sequence[str] | None = None,
                          series_uid: str | None = None, name: str = "enhanced.dcm") -> Path:
    """One Enhanced MR file ``out/name`` holding the slices of ``files`` as frames.

    ``per_frame_b``: each frame's ``DiffusionBValue`` (s/mm²) in its ``MRDiffusionSequence``;
    ``frame_types``: one FrameType (4 words, value 4 the class) per file, per frame; ``image_type``
    and ``series_uid`` replace the first file's top-level values.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence as DicomSequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    slices = [pydicom.dcmread(f) for f in files]
    first = slices[0]
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = ENHANCED_MR
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    for key in _COPIED:
        setattr(ds, key, first.get(key))
    if image_type is not None:
        ds.ImageType = list(image_type)
    if series_uid is not None:
        ds.SeriesInstanceUID = series_uid
    ds.NumberOfFrames = len(slices)

    def rescale_item(s) -> Dataset:
        item = Dataset()
        item.RescaleSlope, item.RescaleIntercept, item.RescaleType = s.RescaleSlope, s.RescaleIntercept, "US"
        return item

    per_frame_rescale = len({(str(s.RescaleSlope), str(s.RescaleIntercept)) for s in slices}) > 1
    shared, measures, orient = Dataset(), Dataset(), Dataset()
    measures.PixelSpacing, measures.SliceThickness = first.PixelSpacing, first.SliceThickness
    orient.ImageOrientationPatient = first.ImageOrientationPatient
    shared.PixelMeasuresSequence, shared.PlaneOrientationSequence = DicomSequence([measures]), DicomSequence([orient])
    if not per_frame_rescale:
        shared.PixelValueTransformationSequence = DicomSequence([rescale_item(first)])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    frames = []
    for k, s in enumerate(slices):
        item, position = Dataset(), Dataset()
        position.ImagePositionPatient = s.ImagePositionPatient
        item.PlanePositionSequence = DicomSequence([position])
        if per_frame_rescale:
            item.PixelValueTransformationSequence = DicomSequence([rescale_item(s)])
        if per_frame_b and "DiffusionBValue" in s:
            diffusion = Dataset()
            diffusion.DiffusionBValue = s.DiffusionBValue
            item.MRDiffusionSequence = DicomSequence([diffusion])
        if frame_types is not None:
            frame_type = Dataset()
            frame_type.FrameType = list(frame_types[k])
            item.MRImageFrameTypeSequence = DicomSequence([frame_type])
        frames.append(item)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(frames)
    ds.PixelData = b"".join(s.PixelData for s in slices)
    out.mkdir(parents=True, exist_ok=True)
    ds.save_as(out / name, enforce_file_format=True)
    return out / name
