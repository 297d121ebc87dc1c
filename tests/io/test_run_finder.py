"""resolve_run: the notebooks' profile = "auto", run_dir = "auto" (issue 25, item 1)."""

from __future__ import annotations

import io
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from sapkit.config import load_config, save_config
from sapkit.errors import ConfigError
from sapkit.io.run_finder import resolve_run, run_problem
from sapkit.io.run_paths import RunDir


def _run(root: Path, name: str, *, mtime: float, stage: str = "predictions", profile: str = "smoke",
         overrides: dict | None = None) -> SimpleNamespace:
    """A fabricated run folder that got as far as ``stage`` (data < splits < pretrained < predictions);
    ``.path`` is the folder, ``.rd`` its RunDir, ``.config_yaml`` its config."""
    path, rd = root / name, RunDir(root / name)
    path.mkdir(parents=True)
    save_config(load_config(profile, overrides), rd.config_yaml)
    reached = ["config", "data", "splits", "pretrained", "predictions"].index(stage)
    files = []
    if reached >= 1:
        files.append(rd.data / "manifest.yaml")
    if reached >= 2:
        files.append(rd.splits_json)
    if reached >= 3:
        files += [rd.skeleton.model("final"), rd.ssl.model("final")]
    if reached >= 4:
        files += [rd.probability_map(init, "p01_s0") for init in ("scratch", "ssl", "sap")]
    files.append(rd.notebook_marker("00_data"))
    for f in files:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("x")
    for p in [*path.rglob("*"), path]:
        os.utime(p, (mtime, mtime))
    return SimpleNamespace(path=path, rd=rd, config_yaml=rd.config_yaml)


def test_newest_run_wins_and_its_config_is_the_profile(tmp_path):
    _run(tmp_path, "smoke", mtime=1_000_000)
    demo = _run(tmp_path, "demo", mtime=2_000_000, overrides={"lesion.epochs": 3})
    out = io.StringIO()
    profile, run_dir = resolve_run("auto", "auto", needs="predictions", runs_root=tmp_path, stream=out)
    assert run_dir == demo.path and profile == str(demo.config_yaml)
    assert load_config(profile).lesion.epochs == 3  # the run's overrides come with it
    assert str(demo.path) in out.getvalue() and 'run_dir = "runs/<name>"' in out.getvalue()
    assert "made with profile smoke" in out.getvalue()


def test_a_run_lacking_what_the_notebook_needs_is_skipped(tmp_path):
    older = _run(tmp_path, "demo", mtime=1_000_000)
    newer = _run(tmp_path, "half", mtime=2_000_000, stage="splits")  # newer, but no models and no predictions
    (tmp_path / "seed_study").mkdir()  # no config.yaml: not a run
    out = io.StringIO()
    assert resolve_run(needs="predictions", runs_root=tmp_path, stream=out).run_dir == older.path
    assert "skipped newer half (no probability maps in predictions/scratch/)" in out.getvalue()
    assert resolve_run(needs="pretrained", runs_root=tmp_path, stream=out).run_dir == older.path
    assert resolve_run(needs="splits", runs_root=tmp_path, stream=out).run_dir == newer.path
    assert run_problem(newer.path, "pretrained") == "no skeleton/model_final.pt (for init sap)"


def test_predictions_of_every_init_are_needed(tmp_path):
    rd = _run(tmp_path, "demo", mtime=1_000_000)
    rd.rd.probability_map("ssl", "p01_s0").unlink()
    assert run_problem(rd.path, "predictions") == "no probability maps in predictions/ssl/"
    only_sap = _run(tmp_path, "sap_only", mtime=500_000, overrides={"lesion.inits": ["sap"]})
    for init in ("scratch", "ssl"):
        for p in only_sap.rd.predictions(init).glob("*"):
            p.unlink()
    assert run_problem(only_sap.path, "predictions") is None  # only the run's own inits count


def test_explicit_values_win(tmp_path, monkeypatch):
    _run(tmp_path, "demo", mtime=2_000_000)
    out = io.StringIO()
    choice = resolve_run("smoke", str(tmp_path / "mine"), needs="predictions", runs_root=tmp_path, stream=out)
    assert choice == ("smoke", tmp_path / "mine") and out.getvalue() == ""  # no check, nothing printed
    monkeypatch.chdir(tmp_path)
    profile, run_dir = resolve_run("demo", "auto", needs="predictions", runs_root=tmp_path, stream=out)
    assert profile == "demo" and run_dir.name == "demo"  # runs/<profile>, as before
    mine = _run(tmp_path, "mine2", mtime=1, stage="data", overrides={"lesion.epochs": 2})
    profile, run_dir = resolve_run("auto", mine.path, needs="data", runs_root=tmp_path, stream=out)
    assert run_dir == mine.path and load_config(profile).lesion.epochs == 2


def test_nothing_found_names_the_parameter_and_the_command(tmp_path):
    _run(tmp_path, "smoke", mtime=1_000_000, stage="splits")
    with pytest.raises(ConfigError) as err:
        resolve_run(needs="predictions", runs_root=tmp_path, stream=io.StringIO())
    message = str(err.value)
    assert 'run_dir = "path/to/run"' in message and "make demo" in message and "sapkit reproduce" in message
    assert "smoke (no probability maps in predictions/scratch/)" in message
    with pytest.raises(ConfigError, match="set profile"):
        resolve_run("auto", tmp_path / "empty", needs="data", stream=io.StringIO())


def test_a_notebook_that_makes_runs_starts_smoke_when_there_is_none(tmp_path):
    out = io.StringIO()
    assert resolve_run(needs=None, runs_root=tmp_path / "runs", stream=out) == ("smoke", tmp_path / "runs" / "smoke")
    assert "no run in" in out.getvalue()
    demo = _run(tmp_path / "runs", "demo", mtime=1_000_000, stage="config")
    assert resolve_run(needs=None, runs_root=tmp_path / "runs", stream=out).run_dir == demo.path
    assert resolve_run("auto", tmp_path / "new", needs=None, stream=out) == ("smoke", tmp_path / "new")
