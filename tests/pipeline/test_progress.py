"""Progress lines of sapkit reproduce and the up-front fold check (the bars: tests/jobs/test_progress_bars.py)."""

import io
import time

import pytest

from sapkit.config import load_config
from sapkit.errors import ConfigError
from sapkit.io.run_paths import RunDir
from sapkit.pipeline.progress import RunMonitor, check_series_plan, format_seconds
from sapkit.pipeline.reproduce import reproduce


def _write_log(md, epochs: int, seconds: float) -> None:
    rows = ["epoch,loss,seconds", "0,,0"] + [f"{k},0.5,{seconds}" for k in range(1, epochs + 1)]
    md.path.mkdir(parents=True, exist_ok=True)
    md.log_csv.write_text("\n".join(rows) + "\n")


def test_one_line_per_epoch_with_measured_eta(tmp_path):
    config = load_config("smoke", {"lesion.epochs": 10})
    rd = RunDir(tmp_path)
    out = io.StringIO()
    monitor = RunMonitor(rd.path, "04_lesion_finetuning", config=config, n_models=2, stream=out)
    monitor._baseline()
    _write_log(rd.lesion("sap", 0), 3, 4.0)
    assert monitor.poll() and not monitor.poll()  # a second look without news prints nothing
    line = out.getvalue().strip()
    # 7 epochs left of this model at 4 s, plus one more model of 10 epochs: 68 s
    assert line == ("[sapkit] 04_lesion_finetuning · lesion/sap/fold_0 · epoch 3/10 · 4.0 s/epoch · "
                    "model ETA 28s · notebook ETA 1m08s")


def test_heartbeat_when_nothing_happens(tmp_path):
    out = io.StringIO()
    with RunMonitor(tmp_path, "05_lesion_analysis", heartbeat_s=0.1, poll_s=0.03, stream=out) as monitor:
        time.sleep(0.5)
    assert sum("05_lesion_analysis · still running" in line for line in monitor.lines) >= 2


def test_folders_vanishing_under_the_monitor_never_stop_it(tmp_path, monkeypatch, capsys):
    """Atomic writes create and remove hidden staging folders while the monitor lists the run folder:
    a demo run printed a FileNotFoundError traceback and went silent for 92 s."""
    from pathlib import Path

    config = load_config("smoke", {"lesion.epochs": 10})
    rd = RunDir(tmp_path)
    staging = rd.skeleton.path / ".sapkit-tmp.host.1"
    staging.mkdir(parents=True)
    (rd.lesion_dir / ".sapkit-tmp.host.2").mkdir(parents=True)
    out = io.StringIO()
    monitor = RunMonitor(rd.path, "02_skeleton_pretraining", config=config, stream=out)
    monitor._baseline()
    real_glob = Path.glob

    def glob_racing_a_writer(self, pattern):
        staging.rmdir() if staging.exists() else None
        raise FileNotFoundError(2, "No such file or directory", str(staging))

    monkeypatch.setattr(Path, "glob", glob_racing_a_writer)
    _write_log(rd.lesion("sap", 0), 2, 3.0)
    assert monitor.poll() is False  # the racing folder is skipped, not an error
    monkeypatch.setattr(Path, "glob", real_glob)
    assert monitor.poll() and "lesion/sap/fold_0 · epoch 2/10" in out.getvalue()

    def broken_poll():
        raise OSError("disk went away")

    with RunMonitor(tmp_path, "02_skeleton_pretraining", heartbeat_s=0.1, poll_s=0.03, stream=out) as running:
        running.poll = broken_poll
        time.sleep(0.5)
    assert sum("still running" in line for line in running.lines) >= 2  # the heartbeat survives
    assert "Traceback" not in capsys.readouterr().err


def test_format_seconds():
    assert [format_seconds(s) for s in (0, 59.6, 60, 3599, 7260)] == ["0s", "1m00s", "1m00s", "59m59s", "2h01m"]


def test_a_fold_list_without_the_tuning_fold_is_refused_at_once(tmp_path):
    with pytest.raises(ConfigError, match=r"no 'tune' fold.*lesion.folds=\[0,1,tune\]"):
        reproduce("smoke", tmp_path / "run", {"lesion.folds": [0, 1]}, progress=False)
    assert not (tmp_path / "run").exists()  # nothing started
    check_series_plan(load_config("smoke", {"lesion.folds": [0, 1]}), ["00_data", "04_lesion_finetuning"])
    check_series_plan(load_config("smoke", {"lesion.folds": ["all"]}), ["05_lesion_analysis"])
