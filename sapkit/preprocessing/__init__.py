"""Raw scans → volumes: from a DICOM folder or per-station NIfTI files to a kit manifest.

Stage before :mod:`sapkit.data`. Whole-body MRI arrives as 4–6 overlapping stations per sequence,
each with its own bias field and intensity scale; DWI comes on a coarser grid and moves relative to
T1. ``sapkit preprocess`` (:func:`sapkit.preprocessing.cohort.preprocess`) sorts and converts the
series (:mod:`~sapkit.preprocessing.dicom`, :mod:`~sapkit.preprocessing.rules`,
:mod:`~sapkit.preprocessing.convert`) or reads a stations CSV (:mod:`~sapkit.preprocessing.stations`),
then runs per scan (:mod:`~sapkit.preprocessing.pipeline`): ADC (:mod:`~sapkit.preprocessing.adc`),
N4 bias correction (:mod:`~sapkit.preprocessing.bias`), inter-station intensity standardisation
(:mod:`~sapkit.preprocessing.isis`), stitching (:mod:`~sapkit.preprocessing.stitch`), DWI-to-T1
registration (:mod:`~sapkit.preprocessing.register`) and, across the cohort, Nyúl histogram
standardisation (:mod:`~sapkit.preprocessing.nyul`). Output layout: :class:`sapkit.io.folders.PreprocessDir`;
QC tables and figures: :mod:`~sapkit.preprocessing.qc`; scores against the synthetic truth:
:mod:`~sapkit.preprocessing.scoring`; grids and resampling: :mod:`~sapkit.preprocessing.geometry`.
The synthetic raw cohort's DICOM writer lives with the phantom (:mod:`sapkit.data.phantom.dicom_writer`).
Settings: :class:`sapkit.config.RawConfig` (profile key ``raw``).
"""
