"""`sapkit train` records the run's configuration, so `sapkit export` works on what it trained (issue 23)."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from sapkit.cli import main
from sapkit.config import config_to_dict, load_config
from sapkit.io.folders import BundleDir
from sapkit.io.run_paths import RunDir

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from test_tasks import write_train_cohort  # noqa: E402

OPTIONS = ["-p", "lesion.roi=[16,16,16]", "-p", "infer.roi=[16,16,16]", "-p", "device=cpu", "-p", "model.channels=[4,8]"]


def test_train_writes_config_yaml_and_export_reads_it(tmp_path, capsys):
    run_dir = write_train_cohort(tmp_path / "run", n_healthy=1, n_patients=3)
    rd = RunDir(run_dir)
    assert not rd.config_yaml.exists()  # a run folder made by hand: data and splits only
    assert main(["train", "lesion", "--profile", "smoke", "--run-dir", str(run_dir), "--init", "scratch", "--fold", "0",
                 *OPTIONS]) == 0
    expected = config_to_dict(load_config("smoke", {"lesion.roi": [16, 16, 16], "infer.roi": [16, 16, 16],
                                                    "device": "cpu", "model.channels": [4, 8]}))
    assert yaml.safe_load(rd.config_yaml.read_text()) == expected
    assert rd.versions_json.is_file()
    capsys.readouterr()
    assert main(["export", str(run_dir), "--init", "scratch", "--fold", "0", "--out", str(tmp_path / "bundle")]) == 0, \
        capsys.readouterr().err
    assert BundleDir(tmp_path / "bundle").model_pt.is_file()
    # the run's own config.yaml as the profile: an input, never rewritten (resume of the finished run)
    before = (rd.config_yaml.read_bytes(), rd.config_yaml.stat().st_mtime_ns)
    assert main(["train", "lesion", "--profile", str(rd.config_yaml), "--run-dir", str(run_dir), "--init", "scratch",
                 "--fold", "0", "--resume"]) == 0
    assert (rd.config_yaml.read_bytes(), rd.config_yaml.stat().st_mtime_ns) == before


def test_export_without_config_yaml_says_which_commands_write_it(tmp_path, capsys):
    run_dir = write_train_cohort(tmp_path / "run", n_healthy=1, n_patients=3)
    assert main(["export", str(run_dir), "--init", "scratch", "--fold", "0", "--out", str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err
    assert "config.yaml does not exist" in err and "sapkit train" in err and "Traceback" not in err
