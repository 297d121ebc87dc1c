"""sapkit.preprocessing.rules: series classification and b-value tags (standard, Siemens, GE, Philips)."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from sapkit.data.phantom.dicom_writer import SeriesTags, write_dicom_series
from sapkit.errors import ConfigError
from sapkit.preprocessing.rules import _number, default_rules_path, load_rules

RULES = load_rules()


@pytest.mark.parametrize(("modality", "texts", "image_type", "has_b", "expected"), [
    ("MR", ("WB T1 tse station 2",), ("ORIGINAL", "PRIMARY", "M", "ND"), False, ("t1", "rule: T1-weighted")),
    ("MR", ("WB ep2d_diff b50 b1000 station 1",), ("ORIGINAL", "PRIMARY", "DIFFUSION"), True, ("dwi", "rule: diffusion (b-value in the header)")),
    ("MR", ("DWIBS whole body",), ("ORIGINAL", "PRIMARY"), False, ("dwi", "rule: diffusion by name")),
    ("MR", ("FAST LOCALIZER",), ("ORIGINAL", "PRIMARY"), False, ("ignore", "rule: localizer")),
    ("MR", ("ep2d_diff_ADC",), ("DERIVED", "PRIMARY", "DIFFUSION", "ADC"), True, ("ignore", "rule: derived map or reformat")),
    ("MR", ("t1_vibe_dixon_W",), ("DERIVED", "PRIMARY", "DIXON", "WATER"), False, ("water", "rule: Dixon water image")),
    ("MR", ("WB_T1_st1",), ("ORIGINAL", "PRIMARY", "M", "ND"), False, ("t1", "rule: T1-weighted")),
    ("MR", ("T2 haste cor",), ("ORIGINAL", "PRIMARY"), False, ("ignore", "rule: T2-weighted or STIR (not a kit channel)")),
    ("MR", ("rfMRI_REST_PA",), ("ORIGINAL", "PRIMARY"), False, ("unknown", None)),
    ("CT", ("Routine Brain",), ("ORIGINAL",), False, ("unused", "modality CT is not one of ['MR']")),
])
def test_classification(modality, texts, image_type, has_b, expected):
    sequence, reason = RULES.classify(modality=modality, texts=texts, image_type=image_type, has_b_value=has_b)
    assert sequence == expected[0]
    if expected[1] is None:
        assert reason.startswith("no rule matched") and "rules.yaml" in reason
    else:
        assert reason == expected[1]


@pytest.mark.parametrize("vendor", ["standard", "siemens", "ge", "philips"])
def test_b_values_are_read_from_every_vendor_tag(tmp_path, vendor):
    tags = SeriesTags("P1", "1.2.3", "1.2.3.4", "1.2.3.5", 7, "dwi")
    files, _ = write_dicom_series({50.0: np.ones((4, 3, 2)), 800.0: np.ones((4, 3, 2))}, np.eye(4), tmp_path,
                                  tags=tags, vendor=vendor)
    found = [RULES.b_value(pydicom.dcmread(f, stop_before_pixels=True)) for f in files]
    assert [b for b, _ in found] == [50.0, 50.0, 800.0, 800.0]
    expected_source = {"standard": "DiffusionBValue (standard)", "siemens": "Siemens B_value",
                       "ge": "GE slop_int_6", "philips": "DiffusionBValue (standard)"}[vendor]
    assert found[0][1] == expected_source
    if vendor == "ge":  # the raw GE value carries the 10^9 offset the rule removes
        assert str(pydicom.dcmread(files[0])[0x0043, 0x1039].value[0]) == "1000000050"


def test_b_value_from_sequence_name_and_none():
    ds = pydicom.Dataset()
    assert RULES.b_value(ds) == (None, "")
    ds.SequenceName = "*ep_b1400t"
    assert RULES.b_value(ds) == (1400.0, "Siemens SequenceName")


def test_number_parses_raw_bytes_of_unknown_vr():
    assert _number(b"1000\\8\\0\\0 ") == 1000.0  # IS of an implicit-VR private element
    assert _number(np.float32(800.0).tobytes()) == 800.0  # FL of a Philips element read as UN
    assert _number(b"\x01\x02\x03") is None and _number(None) is None and _number("abc") is None


@pytest.mark.parametrize(("text", "message"), [
    ("rules: [{sequence: t2}]", "sequence 't2' must be one of"),
    ("rules: [{sequence: t1, descripton: [x]}]", r"unknown key\(s\) \['descripton'\]"),
    ("rules: [{sequence: t1, description: ['(']}]", "is not a valid regular expression"),
    ("rules: [{sequence: dwi, has_b_value: maybe}]", "has_b_value must be true or false"),
    ("rules: []\nb_value_tags: [{name: x}]", r'needs tag: "gggg,eeee"'),
    ("- a list", "must be a mapping with a 'rules' list"),
])
def test_bad_rules_files_name_the_problem(tmp_path, text, message):
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_rules(path)


def test_missing_rules_file_and_edited_copy(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_rules(tmp_path / "nope.yaml")
    edited = tmp_path / "rules.yaml"
    edited.write_text(default_rules_path().read_text().replace("  - name: localizer\n",
                                                               "  - name: T2 as T1\n    sequence: t1\n    description: ['haste']\n"
                                                               "  - name: localizer\n", 1))
    sequence, reason = load_rules(edited).classify(modality="MR", texts=("T2 haste cor",), image_type=(), has_b_value=False)
    assert (sequence, reason) == ("t1", "rule: T2 as T1")
