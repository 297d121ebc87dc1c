"""The console script on manifests built in the tests: check, fingerprint, split, prepare."""

import hashlib
import json
import shutil
import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from sapkit.cli import main
from sapkit.io.nifti import orientation_code, read_image
from sapkit.data.manifest import load_manifest, write_manifest


def test_version_is_printed(capsys):
    from sapkit import __version__

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"sapkit {__version__}"


def test_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["frobnicate"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'frobnicate'" in capsys.readouterr().err


def test_check_ok_and_failing(tiny_cohort, capsys):
    assert main(["check", str(tiny_cohort)]) == 0
    out = capsys.readouterr().out
    assert "OK: 6 scans valid" in out and "p05_s0" in out
    (tiny_cohort.parent / "p05_b1000.nii.gz").unlink()
    assert main(["check", str(tiny_cohort)]) == 1
    err = capsys.readouterr().err
    assert "p05_s0: b1000 file" in err and "does not exist" in err


def test_fingerprint_json(tiny_cohort, tmp_path):
    out = tmp_path / "fp.json"
    assert main(["fingerprint", str(tiny_cohort), "--json", str(out)]) == 0
    fp = json.loads(out.read_text())
    assert fp["dataset"]["n_scans"] == 6 and fp["dataset"]["sites"] == ["site0", "site1"]
    assert fp["dataset"]["median_spacing_mm"] == [2.0, 2.0, 3.0]
    scan = {s["scan_id"]: s for s in fp["scans"]}
    # 27 voxels... p05 has 4 lesions of 2x2x2 voxels of 12 mm3 -> 0.384 mL
    assert scan["p05_s0"]["lesion_volume_ml"] == {"lesion": 0.384}
    assert scan["h00_s0"]["skeleton_volume_ml"]["thoracic spine"] == round(3 * 3 * 10 * 12 / 1000, 3)
    assert scan["h00_s0"]["orientation"] == "RAS" and scan["h00_s0"]["handedness"] == "right"
    assert main(["fingerprint", str(tmp_path / "none"), "--json", str(out)]) == 1


def test_split_command(tiny_cohort, tmp_path):
    assert main(["split", str(tiny_cohort), "--run-dir", str(tmp_path), "-p", "splits.k=2", "-p", "splits.tuning_fold=1"]) == 0
    s = json.loads((tmp_path / "splits.json").read_text())
    assert s["k"] == 2 and sorted(x for f in s["folds"].values() for x in f) == ["p02", "p03", "p04", "p05"]


def test_prepare_reorients_real_nifti_and_resamples(nibabel_data, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(nibabel_data / "anatomical.nii", src / "t1.nii")  # a real LAS, 2 mm file
    real = nib.load(str(src / "t1.nii"))
    data = read_image(src / "t1.nii")[0]
    # b1000 on a RAS grid covering the same voxels (a flipped copy): prepare must resample it back
    ras_data, ras_aff = data[::-1].copy(), real.affine.copy()
    ras_aff[0, 0] = 2.0
    ras_aff[0, 3] = real.affine[0, 3] - 2.0 * (data.shape[0] - 1)
    nib.save(nib.Nifti1Image(ras_data * 3, ras_aff), str(src / "b1000.nii.gz"))
    labels = (data > np.percentile(data, 90)).astype(np.int16)
    nib.save(nib.Nifti1Image(labels, real.affine), str(src / "lesion.nii.gz"))
    rows = pd.DataFrame([{"scan_id": "s1", "subject_id": "p1", "site": "a", "cohort": "patient", "t1": "t1.nii",
                          "b1000": "b1000.nii.gz", "skeleton_label": "", "lesion_label": "lesion.nii.gz"}])
    write_manifest(src, rows, name="real", description="nibabel anatomical.nii")
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in src.iterdir()}
    out = tmp_path / "out"
    assert main(["prepare", str(src), "--out", str(out)]) == 0
    m = load_manifest(out)  # validates: every file now on the T1 grid
    t1, aff, _ = read_image(m.scans.loc[0, "t1"])
    assert orientation_code(aff) == "RAS"
    np.testing.assert_array_equal(t1, data[::-1])  # reorientation is a pure permutation
    b, _, _ = read_image(m.scans.loc[0, "b1000"])
    np.testing.assert_allclose(b, 3 * data[::-1], rtol=1e-5, atol=1e-3)
    les = nib.load(m.scans.loc[0, "lesion_label"])
    assert np.asarray(les.dataobj).sum() == labels.sum()
    # world coordinates are preserved: voxel (0,0,0) of the original == voxel (X-1,0,0) of the RAS copy
    np.testing.assert_allclose(real.affine @ [0, 0, 0, 1], aff @ [data.shape[0] - 1, 0, 0, 1], atol=1e-4)
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in src.iterdir()} == before
    # resampling to 4 mm halves the grid
    out4 = tmp_path / "out4"
    assert main(["prepare", str(src), "--out", str(out4), "--spacing", "4", "4", "4"]) == 0
    t1_4, aff4, _ = read_image(load_manifest(out4).scans.loc[0, "t1"])
    assert t1_4.shape == tuple(round(s / 2) for s in data.shape)
    np.testing.assert_allclose(np.abs(np.diag(aff4)[:3]), [4, 4, 4])
    assert main(["prepare", str(src), "--out", str(src)]) == 1  # never writes over inputs


def test_evaluate_one_case_stays_light_and_matches_the_library(tmp_path):
    """`sapkit evaluate --gt --pred` in a fresh process imports no pandas, scipy.ndimage, torch or
    MONAI (the start-up cost would dwarf the evaluation of a whole-body pair) and writes the same
    JSON as the same command run in a process where all of them are loaded."""
    import subprocess
    import sys

    rng = np.random.default_rng(5)
    gt = np.zeros((40, 36, 30), np.uint8)
    prob = np.zeros(gt.shape, np.float32)
    for c in rng.integers(5, 25, (6, 3)):
        sl = tuple(slice(int(x), int(x) + int(rng.integers(2, 7))) for x in c)
        gt[sl] = 1
        shifted = tuple(slice(s.start + 1, s.stop + int(rng.integers(0, 3))) for s in sl)
        prob[shifted] = rng.uniform(0.3, 1.0)
    affine = np.diag([1.3, 1.3, 1.2, 1.0])
    nib.save(nib.Nifti1Image(gt, affine), str(tmp_path / "gt.nii"))
    nib.save(nib.Nifti1Image(prob, affine), str(tmp_path / "prob.nii"))
    args = ["evaluate", "--gt", str(tmp_path / "gt.nii"), "--pred", str(tmp_path / "prob.nii"), "--prob",
            "--threshold", "0.6"]
    script = ("import json, sys\nfrom sapkit.cli import main\n"
              f"rc = main({args + ['--json', str(tmp_path / 'fresh.json')]!r})\n"
              "heavy = ('pandas', 'scipy.ndimage', 'torch', 'monai', 'pydicom')\n"
              "print(json.dumps({'rc': rc, 'loaded': [m for m in heavy if m in sys.modules]}))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"rc": 0, "loaded": []}
    import pandas  # noqa: F401
    import scipy.ndimage  # noqa: F401

    assert main(args + ["--json", str(tmp_path / "loaded.json")]) == 0
    fresh = json.loads((tmp_path / "fresh.json").read_text())
    assert fresh == json.loads((tmp_path / "loaded.json").read_text())
    assert fresh["tp"] + fresh["fn"] == len(fresh["lesions"]) > 0 and 0 < fresh["nsd"] <= 1


def test_evaluate_with_a_skeleton_names_each_lesions_bone(tmp_path):
    """--skeleton adds each lesion's majority bone class (hand-placed) to the JSON; without it, no bone keys."""
    gt = np.zeros((20, 20, 20), np.uint8)
    gt[2:5, 2:5, 2:5] = 1  # 27 voxels: 18 in class 3, 9 in class 5 -> class 3
    gt[12:14, 12:14, 12:14] = 1  # 8 voxels outside the skeleton -> unlabelled
    skeleton = np.zeros_like(gt)
    skeleton[2:5, 2:5, 2:4] = 3
    skeleton[2:5, 2:5, 4] = 5
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    for name, arr in (("gt", gt), ("skel", skeleton)):
        nib.save(nib.Nifti1Image(arr, affine), str(tmp_path / f"{name}.nii.gz"))
    base = ["evaluate", "--gt", str(tmp_path / "gt.nii.gz"), "--pred", str(tmp_path / "gt.nii.gz")]
    assert main(base + ["--skeleton", str(tmp_path / "skel.nii.gz"), "--json", str(tmp_path / "with.json")]) == 0
    assert main(base + ["--json", str(tmp_path / "without.json")]) == 0
    with_skeleton = json.loads((tmp_path / "with.json").read_text())["lesions"]
    without = json.loads((tmp_path / "without.json").read_text())["lesions"]
    assert [(d["bone_label"], d["bone_region"]) for d in with_skeleton] == [(3, "lumbar spine"), (0, "unlabelled")]
    assert all("bone_label" not in d and "bone_region" not in d for d in without)


def test_kit_warnings_print_as_one_line(tmp_path):
    """A LesionLabelWarning on the command line reads `sapkit evaluate: warning: …`, without a source line."""
    import subprocess
    import sys

    gt = np.zeros((16, 16, 16), np.uint8)
    gt[2:5, 2:5, 2:5] = 1
    gt[5:8, 2:5, 2:5] = 2  # two touching instances
    nib.save(nib.Nifti1Image(gt, np.eye(4)), str(tmp_path / "inst.nii.gz"))
    done = subprocess.run([sys.executable, "-c", "import sys; from sapkit.cli import main; sys.exit(main())",
                           "evaluate", "--gt", str(tmp_path / "inst.nii.gz"), "--pred", str(tmp_path / "inst.nii.gz"),
                           "--json", str(tmp_path / "out.json")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("sapkit evaluate: warning: scan 'inst.nii.gz': 1 lesion(s) join touching voxels")
    assert done.stderr.count("\n") == 1 and ".py:" not in done.stderr
