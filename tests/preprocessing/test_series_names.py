"""Real scanner series names classify as a radiographer would expect (issue 24, acceptance 2).

Every name below was read in a public source (cited per row by a key of ``SOURCES``); the expected
class is the kit's: ``t1`` (the T1-weighted channel: T1 TSE/VIBE/MPRAGE, Dixon in-phase), ``dwi``
(diffusion-weighted images, trace images included), ``ignore`` (recognised, not a kit channel:
localizers, calibration scans, ADC/FA/calculated maps, Dixon opposed-phase, T2/STIR), ``water``/``fat``
(Dixon water and fat images, carried beside the T1) or
``unknown`` (sequences a whole-body bone protocol does not contain: fMRI, SWI). ImageType words
and "b-value in the header" are given where the source shows them (DERIVED for maps, DIFFUSION for
diffusion series); otherwise the ImageType of an original image, ``ORIGINAL\\PRIMARY\\M\\ND``.
"""

from __future__ import annotations

import pytest

from sapkit.preprocessing.rules import load_rules

RULES = load_rules()

#: Where each name was read.
SOURCES = {
    "mrtrix2770": "https://github.com/MRtrix3/mrtrix3/pull/2770 (Siemens DICOM test series listed by the DICOM tests)",
    "mrtrix3047": "https://github.com/MRtrix3/mrtrix3/pull/3047 (Siemens DWI series and scanner-derived maps)",
    "zagreb": "HIIM-PERINEDO/zagreb_dhcp bids/README.md (a Siemens Prisma session, series as exported)",
    "ge_fmrif": "nih-fmrif/ge_test_dataset 20180907-26974/README-Study.txt and mr_0004/README-Series.txt (GE MR750)",
    "pydicom": "pydicom/pydicom src/pydicom/data/test_files (real headers shipped with pydicom; tests/preprocessing/test_dicom.py)",
    "pydicom_data": "pydicom/pydicom-data data_store/data (emri_small.dcm, MR-SIEMENS-DICOM-WithOverlays.dcm series names)",
    "dcm2niix1022": "https://github.com/rordenlab/dcm2niix/issues/1022 (Philips mDixon: FrameType ...\\DIXON\\WATER|FAT|FAT_FRACTION)",
    "ukb_wb": "UK Biobank whole-body Dixon protocol (data field 20201): six stations, series Dixon_BH_17s_{in,opp,F,W} and "
              "Dixon_noBH_{in,opp,F,W}; names as matched by public UK Biobank body-MRI ingestion code "
              "(https://github.com/broadinstitute/ml4h/pull/425, 'Whole-body MRI ingestion')",
    "issue24": "sapkit issue 24 (a vendor-style export: WB_T1_st1 classified unknown before the fix)",
}

ORIGINAL = ("ORIGINAL", "PRIMARY", "M", "ND")
DIFFUSION = ("ORIGINAL", "PRIMARY", "DIFFUSION", "NONE")
TRACEW = ("DERIVED", "PRIMARY", "DIFFUSION", "TRACEW")
ADC = ("DERIVED", "PRIMARY", "DIFFUSION", "ADC")
FA = ("DERIVED", "PRIMARY", "DIFFUSION", "FA")

# (name, ImageType, b-value in the header, expected class, source key)
TABLE = [
    # Siemens diffusion, trace-weighted images and scanner-derived maps
    ("diff 20DW 2NEX AT TE80", DIFFUSION, True, "dwi", "mrtrix2770"),
    ("diff 20DW 2NEX AT TE80_TRACEW", TRACEW, True, "dwi", "mrtrix2770"),
    ("diff 20DW 2NEX AT TE80_ADC", ADC, True, "ignore", "mrtrix2770"),
    ("diff 20DW 2NEX AT TE80_FA", FA, False, "ignore", "mrtrix2770"),
    ("diff 20DW 2NEX TE90 TR6400", DIFFUSION, True, "dwi", "mrtrix2770"),
    ("diff 20DW 2NEX TE90 TR6400_ADC", ADC, True, "ignore", "mrtrix2770"),
    ("diff 20DW 2NEX TE90 TR6400_TRACEW", TRACEW, True, "dwi", "mrtrix2770"),
    ("ep2d_diff_MDDW_AT_WIP", DIFFUSION, True, "dwi", "mrtrix2770"),
    ("ep2d_diff_MDDW_AT_WIP_ADC", ADC, True, "ignore", "mrtrix2770"),
    ("ep2d_diff_MDDW_AT_WIP_TRACEW", TRACEW, True, "dwi", "mrtrix2770"),
    ("ep2d_diff_MDDW_AT_WIP_FA", FA, False, "ignore", "mrtrix2770"),
    ("localizer_sf", ORIGINAL, False, "ignore", "mrtrix2770"),
    # the same names without the ImageType a tidy export keeps (anonymised or re-written headers)
    ("diff 20DW 2NEX ALL TIGHT_TRACEW", ORIGINAL, False, "dwi", "mrtrix2770"),
    ("diff 20DW 2NEX ALL TIGHT_ADC", ORIGINAL, False, "ignore", "mrtrix2770"),
    ("diff 20DW 2NEX ALL TIGHT_FA", ORIGINAL, False, "ignore", "mrtrix2770"),
    ("ep2d_diff_3scan_trace_p2", DIFFUSION, True, "dwi", "mrtrix3047"),
    ("BRI 64 directions ep2d_diff_3scan_trace_p2_ADC", ADC, True, "ignore", "mrtrix3047"),
    ("BRI 64 directions ep2d_diff_3scan_trace_p2_TRACEW", TRACEW, True, "dwi", "mrtrix3047"),
    ("BRI 64 directions ep2d_diff_3scan_trace_p2_ColFA", ("DERIVED", "PRIMARY", "DIFFUSION", "FA"), False, "ignore",
     "mrtrix3047"),
    ("BRI 25-30 MDDW directions ep2d_diff_3scan_trace_p2_FA", ORIGINAL, False, "ignore", "mrtrix3047"),
    ("ep2d_bold_moco_p2", ORIGINAL, False, "unknown", "mrtrix3047"),  # fMRI: not diffusion despite ep2d
    ("gre_field_mapping", ORIGINAL, False, "ignore", "mrtrix3047"),
    ("t2_tse_tra", ORIGINAL, False, "ignore", "zagreb"),
    # a Siemens session: scouts, reformats, T1, diffusion and maps
    ("AAHead_Scout_64ch-head-coil", ORIGINAL, False, "ignore", "zagreb"),
    ("AAHead_Scout_64ch-head-coil_MPR_sag", ("DERIVED", "PRIMARY", "MPR"), False, "ignore", "zagreb"),
    ("localizer", ORIGINAL, False, "ignore", "zagreb"),
    ("t1_mprage_sag_iso", ORIGINAL, False, "t1", "zagreb"),
    ("t2_space_sag_iso_edinburgh", ORIGINAL, False, "ignore", "zagreb"),
    ("t2_space_dark-fluid_sag_iso", ORIGINAL, False, "ignore", "zagreb"),
    ("dMRI_dir106_PA_2x2x2", DIFFUSION, True, "dwi", "zagreb"),
    ("dMRI_dir106_AP_2x2x2_SBRef", ORIGINAL, False, "ignore", "zagreb"),
    ("dMRI_dir106_AP_2x2x2_ADC", ADC, True, "ignore", "zagreb"),
    ("dMRI_dir106_AP_2x2x2_FA", FA, False, "ignore", "zagreb"),
    ("dMRI_dir106_AP_2x2x2_ColFA", ORIGINAL, False, "ignore", "zagreb"),
    ("ep2d_diff_4scan_trace_p2_TRACEW", TRACEW, True, "dwi", "zagreb"),
    ("ep2d_diff_4scan_trace_p2_ADC", ADC, True, "ignore", "zagreb"),
    ("ep2d_diff_4scan_trace_p2_TRACEW", ORIGINAL, False, "dwi", "zagreb"),
    ("ep2d_diff_4scan_trace_p2_ADC", ORIGINAL, False, "ignore", "zagreb"),
    ("SpinEchoFieldMap_AP", ORIGINAL, False, "ignore", "zagreb"),
    ("rfMRI_REST_PA", ORIGINAL, False, "unknown", "zagreb"),
    ("mIP_Images(SW)", ("DERIVED", "PRIMARY", "MIP"), False, "ignore", "zagreb"),
    ("SWI_Images", ORIGINAL, False, "ignore", "zagreb"),
    # GE
    ("3plane_loc_ssfse", ORIGINAL, False, "ignore", "ge_fmrif"),
    ("calibration_asset_pure", ORIGINAL, False, "ignore", "ge_fmrif"),
    ("axial_4_directions_3_shells", ("ORIGINAL", "PRIMARY", "OTHER"), True, "dwi", "ge_fmrif"),
    ("Axial 4 directions, 3 shells, pepolar=1", ("ORIGINAL", "PRIMARY", "OTHER"), True, "dwi", "ge_fmrif"),
    ("axial_epi_fmri_interleaved_s_to_i", ("ORIGINAL", "PRIMARY", "OTHER"), False, "unknown", "ge_fmrif"),
    # real headers in pydicom's and pydicom-data's test files
    ("FAST LOCALIZER", ORIGINAL, False, "ignore", "pydicom"),
    ("T/S/C RF FAST PILOT", ORIGINAL, False, "ignore", "pydicom"),
    ("ANGIO Projected from   C", ("DERIVED", "SECONDARY"), False, "ignore", "pydicom"),
    ("T1W/SE/1024", ("DERIVED", "SECONDARY"), False, "unknown", "pydicom_data"),  # derived: not an acquisition
    # Philips mDixon: the image class is in the frame/image type
    ("mDixon", ("ORIGINAL", "PRIMARY", "DIXON", "WATER"), False, "water", "dcm2niix1022"),
    ("mDixon", ("ORIGINAL", "PRIMARY", "DIXON", "FAT"), False, "fat", "dcm2niix1022"),
    ("mDixon", ("ORIGINAL", "PRIMARY", "DIXON", "FAT_FRACTION"), False, "ignore", "dcm2niix1022"),
    ("mDixon", ("ORIGINAL", "PRIMARY", "DIXON", "IN_PHASE"), False, "t1", "dcm2niix1022"),
    ("mDixon", ("ORIGINAL", "PRIMARY", "DIXON", "OPPOSED_PHASE"), False, "ignore", "dcm2niix1022"),
    # UK Biobank whole-body Dixon (Siemens Aera, six stations)
    ("Dixon_BH_17s_in", ORIGINAL, False, "t1", "ukb_wb"),
    ("Dixon_BH_17s_opp", ORIGINAL, False, "ignore", "ukb_wb"),
    ("Dixon_BH_17s_F", ORIGINAL, False, "fat", "ukb_wb"),
    ("Dixon_BH_17s_W", ORIGINAL, False, "water", "ukb_wb"),
    ("Dixon_noBH_in", ORIGINAL, False, "t1", "ukb_wb"),
    ("Dixon_noBH_opp", ORIGINAL, False, "ignore", "ukb_wb"),
    ("Dixon_noBH_F", ORIGINAL, False, "fat", "ukb_wb"),
    ("Dixon_noBH_W", ORIGINAL, False, "water", "ukb_wb"),
    # the vendor-style export of issue 24
    ("WB_T1_st1", ORIGINAL, False, "t1", "issue24"),
    ("WB_DWI_b50_b1000_st1", DIFFUSION, True, "dwi", "issue24"),
]


def test_the_table_is_large_cited_and_covers_the_vendors_and_classes():
    assert len(TABLE) >= 60
    assert {row[4] for row in TABLE} <= set(SOURCES)
    assert {row[3] for row in TABLE} == {"t1", "dwi", "water", "fat", "ignore", "unknown"}
    names = " ".join(row[0] for row in TABLE).lower()
    for word in ("trace", "adc", "dixon", "_in", "_opp", "_w", "_f", "loc", "scout"):
        assert word in names


@pytest.mark.parametrize(("name", "image_type", "has_b", "expected", "source"), TABLE,
                         ids=[f"{r[0]}|{r[1][-1]}" for r in TABLE])
def test_series_name_classifies_as_expected(name, image_type, has_b, expected, source):
    sequence, reason = RULES.classify(modality="MR", texts=(name, name, ""), image_type=image_type, has_b_value=has_b)
    assert sequence == expected, f"{name} ({source}): {sequence} by {reason}"
    if expected == "unknown":
        assert reason.startswith("no rule matched") and name in reason


def test_dixon_classes_are_named_in_the_reason():
    def why(name, image_type=ORIGINAL):
        return RULES.classify(modality="MR", texts=(name,), image_type=image_type, has_b_value=False)[1]

    assert why("Dixon_noBH_W") == "rule: Dixon water image by name"
    assert why("Dixon_noBH_F") == "rule: Dixon fat image by name"
    assert why("Dixon_noBH_opp") == "rule: Dixon opposed-phase image by name"
    assert why("Dixon_noBH_in") == "rule: T1-weighted"
    assert why("mDixon", ("DERIVED", "PRIMARY", "DIXON", "WATER")) == "rule: Dixon water image"
    assert why("mDixon", ("DERIVED", "PRIMARY", "DIXON", "IN_PHASE")) == "rule: Dixon in-phase image (T1-weighted)"
