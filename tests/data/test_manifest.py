import hashlib

import numpy as np
import pandas as pd
import pytest
import yaml

from sapkit.errors import ManifestError
from sapkit.io.nifti import save_nifti
from sapkit.data.manifest import load_manifest, write_manifest


def _table(manifest_yaml):
    return pd.read_csv(manifest_yaml.parent / "manifest.csv", dtype=str, keep_default_na=False)


def _rewrite(manifest_yaml, table):
    table.to_csv(manifest_yaml.parent / "manifest.csv", index=False)


def _digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_valid_manifest_loads_with_absolute_paths(tiny_cohort):
    m = load_manifest(tiny_cohort.parent)  # the folder works too
    assert len(m.healthy()) == 2 and len(m.patients()) == 4
    assert all(p.startswith(str(m.data_root)) for p in m.scans["t1"])
    assert m.label_maps["skeleton"][9] == "sternum"
    assert "healthy scans: 2" in repr(m)


def test_write_then_load_round_trip(tiny_cohort, tmp_path):
    m = load_manifest(tiny_cohort)
    table = _table(tiny_cohort)
    out = write_manifest(tiny_cohort.parent, table, name="again", description="d", licence="CC-BY-4.0",
                         label_maps={"lesion": {0: "background", 1: "metastasis"}})
    again = load_manifest(out)
    assert again.name == "again" and again.licence == "CC-BY-4.0"
    assert again.label_maps["lesion"][1] == "metastasis"
    pd.testing.assert_frame_equal(again.scans, m.scans)


# Each rule: (how to break the cohort, the words the message must contain). Every message names the file/scan.
def _missing_file(y):
    (y.parent / "h00_b1000.nii.gz").unlink()
    return r"h00_s0: b1000 file .*h00_b1000\.nii\.gz does not exist"


def _unreadable(y):
    (y.parent / "p02_t1.nii.gz").write_bytes(b"not a nifti at all")
    return r"p02_s0: T1 file .*p02_t1\.nii\.gz is not a readable NIfTI"


def _four_d(y):
    save_nifti(np.zeros((12, 10, 14, 2), np.float32), np.diag([2, 2, 3, 1.0]), y.parent / "p03_t1.nii.gz")
    return r"p03_t1\.nii\.gz is 4D"


def _two_d(y):
    import nibabel as nib
    nib.save(nib.Nifti1Image(np.zeros((12, 10), np.float32), np.eye(4)), str(y.parent / "p03_b1000.nii.gz"))
    return r"p03_b1000\.nii\.gz is 2D"


def _nan(y):
    data = np.ones((12, 10, 14), np.float32)
    data[0, 0, 0] = np.inf
    save_nifti(data, np.diag([2, 2, 3, 1.0]), y.parent / "p04_b1000.nii.gz")
    return r"p04_b1000\.nii\.gz has 1 NaN/Inf"


def _grid_shape(y):
    save_nifti(np.ones((12, 10, 13), np.float32), np.diag([2, 2, 3, 1.0]), y.parent / "p05_b1000.nii.gz")
    return r"b1000 .*p05_b1000\.nii\.gz shape \(12, 10, 13\) ≠ T1 .*shape \(12, 10, 14\)"


def _label_grid(y):
    save_nifti(np.zeros((12, 10, 14), np.uint8), np.diag([2, 2, 3.01, 1.0]), y.parent / "p05_lesion.nii.gz")
    return r"lesion_label .*p05_lesion\.nii\.gz grid lies up to"


def _label_values(y):
    data = np.zeros((12, 10, 14), np.int16)
    data[0, 0, 0] = 17
    save_nifti(data, np.diag([2, 2, 3, 1.0]), y.parent / "h01_skel.nii.gz")
    return r"h01_skel\.nii\.gz contains label values \[17\]"


def _non_integer_labels(y):
    save_nifti(np.full((12, 10, 14), 0.5, np.float32), np.diag([2, 2, 3, 1.0]), y.parent / "p02_lesion.nii.gz")
    return r"p02_lesion\.nii\.gz holds non-integer values"


def _duplicate_ids(y):
    t = _table(y)
    t.loc[1, "scan_id"] = t.loc[0, "scan_id"]
    _rewrite(y, t)
    return r"duplicate scan_id\(s\) \['h00_s0'\]"


def _two_folds(y):
    t = _table(y)
    t["fold"] = ["", "", "0", "1", "1", "0"]
    extra = t.iloc[[2]].copy()
    extra["scan_id"], extra["fold"] = "p02_s1", "1"
    _rewrite(y, pd.concat([t, extra]))
    return r"subject p02 appears in several folds"


def _missing_column(y):
    _rewrite(y, _table(y).drop(columns=["site"]))
    return r"missing column\(s\) \['site'\]"


def _empty(y):
    _rewrite(y, _table(y).iloc[0:0])
    return r"no rows"


def _escaping_path(y):
    t = _table(y)
    t.loc[0, "t1"] = "../../etc/passwd"
    _rewrite(y, t)
    return r"h00_s0: t1 path '../../etc/passwd' leaves data_root"


def _channel_order(y):
    meta = yaml.safe_load(y.read_text())
    meta["channels"] = ["b1000", "t1"]
    y.write_text(yaml.safe_dump(meta))
    return r"channels \['b1000', 't1'\] ≠ \['t1', 'b1000'\]"


def _bad_cohort(y):
    t = _table(y)
    t.loc[0, "cohort"] = "volunteer"
    _rewrite(y, t)
    return r"cohort 'volunteer' must be 'healthy' or 'patient'"


def _patient_without_lesion(y):
    t = _table(y)
    t.loc[3, "lesion_label"] = ""
    _rewrite(y, t)
    return r"p03_s0: patient scan without lesion_label"


RULES = [_missing_file, _unreadable, _four_d, _two_d, _nan, _grid_shape, _label_grid, _label_values,
         _non_integer_labels, _duplicate_ids, _two_folds, _missing_column, _empty, _escaping_path,
         _channel_order, _bad_cohort, _patient_without_lesion]


@pytest.mark.parametrize("rule", RULES, ids=lambda f: f.__name__.strip("_"))
def test_each_validation_rule_names_the_problem(tiny_cohort, rule):
    message = rule(tiny_cohort)
    before = _digests(tiny_cohort.parent)
    with pytest.raises(ManifestError, match=message):
        load_manifest(tiny_cohort)
    assert _digests(tiny_cohort.parent) == before  # validation never writes


def test_all_problems_are_listed_at_once(tiny_cohort):
    _missing_file(tiny_cohort)
    _nan(tiny_cohort)
    with pytest.raises(ManifestError, match="2 problem") as err:
        load_manifest(tiny_cohort)
    assert "h00_b1000" in str(err.value) and "p04_b1000" in str(err.value)


def test_missing_manifest_explains_how_to_get_one(tmp_path):
    with pytest.raises(ManifestError, match="sapkit synth"):
        load_manifest(tmp_path)


def test_a_yaml_bomb_manifest_is_refused(tiny_cohort):
    from sapkit.errors import ManifestError

    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    bomb = "\n".join(lines) + "\nname: *i\ncsv: manifest.csv\n"
    assert len(bomb.encode()) < 1024  # 1 KB that expands to 9**9 values
    tiny_cohort.write_text(bomb)
    with pytest.raises(ManifestError, match=r"manifest\.yaml expands to more than 100,000 values through aliases"):
        load_manifest(tiny_cohort)  # refused while counting, before 9**9 values are built
