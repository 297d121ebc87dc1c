"""Job arrays through submitit: local executor end to end, SLURM submission offline (fake sbatch),
element states, kills and --resume, and a two-element smoke sweep through --executor local."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sapkit.cli import main
from sapkit.errors import ConfigError
from sapkit.io.run_paths import RunDir
from sapkit.io.folders import JobsDir
from sapkit.jobs.executors import Resources, element_states, run_array
from sapkit.pipeline.sweep import load_grid, summarize_sweep, sweep


def _fake_slurm(folder: Path) -> Path:
    """``sbatch`` that keeps the script and answers like SLURM; an ``srun`` (submitit looks for one)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sbatch").write_text(f'#!/bin/bash\ncp "$1" {folder}/last.sbatch\necho "Submitted batch job 4242"\n')
    (folder / "srun").write_text("#!/bin/bash\nexit 1\n")
    for name in ("sbatch", "srun"):
        (folder / name).chmod(0o755)
    return folder


def test_resources_from_yaml_and_options():
    r = Resources.from_mapping({"partition": "gpu", "gpus": 1, "time_min": 30, "setup": ["module load cuda"]})
    assert r.setup == ("module load cuda",) and r.cpus == 2
    params = r.submitit_parameters("x")
    assert params["slurm_partition"] == "gpu" and params["gpus_per_node"] == 1 and params["timeout_min"] == 30
    assert params["slurm_setup"] == ["module load cuda"] and "slurm_account" not in params
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['gpu'\]"):
        Resources.from_mapping({"gpu": 1})
    with pytest.raises(ConfigError, match="array_parallelism >= 1"):
        Resources(array_parallelism=0)
    with pytest.raises(ConfigError, match="executor must be one of"):
        run_array({}, "/tmp/unused", executor="pbs")


def test_local_array_records_each_state_and_resume_resubmits_only_the_failure(tmp_path):
    folder = tmp_path / "jobs"
    out = tmp_path / "a.txt"
    elements = {"a": (out.write_text, ("hello",)), "b": (time.sleep, ("not a number",)), "c": (time.sleep, (0.1,))}
    states = run_array(elements, folder, executor="local", resources=Resources(array_parallelism=2), progress=False)
    assert states.set_index("name")["state"].to_dict() == {"a": "done", "b": "failed", "c": "done"}
    assert out.read_text() == "hello" and "TypeError" in states.set_index("name").loc["b", "error"]
    assert all(Path(p).is_file() for p in states["stdout"])  # submitit's logs, in the array's folder
    assert pd.read_csv(JobsDir(folder).states_csv)["state"].tolist() == ["done", "failed", "done"]
    elements["b"] = (time.sleep, (0.1,))  # the cause is fixed
    again = run_array(elements, folder, executor="local", resume=True, progress=False)
    assert again["state"].tolist() == ["done"] * 3 and again["attempts"].tolist() == [1, 2, 1]
    assert pd.read_csv(JobsDir(folder).submissions_csv)["name"].tolist() == ["a", "b", "c", "b"]


def test_a_killed_element_is_reported_and_resumed(tmp_path):
    folder = tmp_path / "jobs"
    elements = {"fast": (time.sleep, (0.1,)), "slow": (time.sleep, (300,))}
    result: dict = {}

    def submit():
        try:
            result["t"] = run_array(elements, folder, executor="local", resources=Resources(array_parallelism=2),
                                    progress=False)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            result["error"] = exc

    thread = threading.Thread(target=submit)
    thread.start()
    state = JobsDir(folder).state("slow")
    deadline = time.time() + 300
    while not state.is_file() and time.time() < deadline and thread.is_alive():
        time.sleep(0.2)
    assert state.is_file(), f"the slow element never started: {result}"
    # SIGINT to the element's process, as submitit's local controller forwards a cancel(); the element is
    # interruptible even when it inherited SIGINT as ignored (a sweep started from a background shell)
    os.kill(int(json.loads(state.read_text())["pid"]), signal.SIGINT)
    thread.join(timeout=300)
    assert "t" in result, (result, thread.is_alive(), element_states(folder, check_jobs=False).to_dict("records"))
    table = result["t"].set_index("name")
    assert table.loc["fast", "state"] == "done" and table.loc["slow", "state"] == "failed"
    elements["slow"] = (time.sleep, (0.1,))
    again = run_array(elements, folder, executor="local", resume=True, progress=False).set_index("name")
    assert again["attempts"].to_dict() == {"fast": 1, "slow": 2} and set(again["state"]) == {"done"}


def test_an_element_killed_without_a_word_counts_as_failed(tmp_path):
    folder = tmp_path / "jobs"
    run_array({"x": (time.sleep, (0.1,))}, folder, executor="local", progress=False)
    jd = JobsDir(folder)
    record = json.loads(jd.state("x").read_text())
    jd.state("x").write_text(json.dumps({**record, "state": "running"}))  # as a SIGKILL leaves it: no final state
    table = element_states(folder)
    assert table["state"].tolist() == ["failed"] and table["error"].iloc[0].startswith("killed")
    assert element_states(folder, check_jobs=False)["state"].tolist() == ["running"]


def test_slurm_array_is_one_sbatch_array_and_its_elements_run_offline(tmp_path):
    bin_dir = _fake_slurm(tmp_path / "bin")
    folder = tmp_path / "jobs"
    out = tmp_path / "b.txt"
    elements = {n: (time.sleep, (0.05,)) for n in ("a", "c", "d")}
    elements = {"a": elements["a"], "b": (out.write_text, ("from slurm",)), "c": elements["c"], "d": elements["d"]}
    r = Resources(partition="gpu", account="lab", gpus=1, cpus=8, mem_gb=32, time_min=240, array_parallelism=2,
                  setup=("module load cuda",))
    path = os.environ["PATH"]
    os.environ["PATH"] = f"{bin_dir}:{path}"
    try:
        states = run_array(elements, folder, executor="slurm", resources=r, wait=False, name="sweep", progress=False)
    finally:
        os.environ["PATH"] = path
    script = (bin_dir / "last.sbatch").read_text()
    for line in ("--array=0-3%2", "--partition=gpu", "--account=lab", "--gpus-per-node=1", "--cpus-per-task=8",
                 "--mem=32GB", "--time=240", "--job-name=sweep"):
        assert f"#SBATCH {line}\n" in script
    assert "module load cuda" in script and f"--output {folder / 'logs'}" in script
    assert states["job_id"].tolist() == ["4242_0", "4242_1", "4242_2", "4242_3"]
    assert set(states["state"]) == {"submitted"}
    env = {**os.environ, "SUBMITIT_EXECUTOR": "slurm", "SLURM_JOB_ID": "4243", "SLURM_ARRAY_JOB_ID": "4242",
           "SLURM_ARRAY_TASK_ID": "1", "SLURM_NTASKS": "1", "SLURM_PROCID": "0", "SLURM_LOCALID": "0",
           "SLURM_NODEID": "0", "SLURM_JOB_NUM_NODES": "1"}
    done = subprocess.run([sys.executable, "-u", "-m", "submitit.core._submit", str(folder / "logs")], env=env,
                          capture_output=True, text=True, timeout=300)  # what srun runs on the node for task 1
    assert done.returncode == 0, done.stderr[-2000:]
    assert out.read_text() == "from slurm"
    table = element_states(folder, check_jobs=False).set_index("name")["state"]
    assert table.to_dict() == {"a": "submitted", "b": "done", "c": "submitted", "d": "submitted"}


def test_slurm_needs_the_slurm_commands(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match="sbatch and srun on PATH.*--executor local"):
        run_array({"a": (time.sleep, (0,))}, tmp_path / "jobs", executor="slurm", progress=False)


def test_sweep_cli_flags(tmp_path, capsys):
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({"grid": {"seed": [1]}, "resources": {"gpus": 1, "time_min": 5}}))
    assert load_grid(grid).resources == {"gpus": 1, "time_min": 5}
    assert main(["sweep", str(grid), "--resume"]) == 1
    assert "--resume needs --executor" in capsys.readouterr().err
    assert main(["sweep", str(grid), "--aggregate"]) == 1
    assert "none of the 1 parameter sets" in capsys.readouterr().err
    grid.write_text(yaml.safe_dump({"grid": {"seed": [1]}, "resources": {"gpus": -1}}))
    with pytest.raises(ConfigError, match=r"grid\.yaml: resources: resources need gpus >= 0"):
        load_grid(grid)


def test_sweep_through_the_local_executor_equals_jobs_1_and_resumes_one_element(smoke_sweep):
    """Two parameter sets run side by side as a local job array; the one also run by ``--jobs 1`` gives
    the same row (the parallel workers' thread settings change no number), a killed element is resumed
    alone and the summary comes back unchanged.

    Two elements are the fewest that run in parallel; the Cartesian product and the run names of
    larger grids are tested without training in tests/pipeline/test_sweep.py. The two sweeps ran in the
    background while the rest of the suite ran (tests/smoke_runs.py); the resume runs here."""
    array, grid = smoke_sweep.array, smoke_sweep.array_grid
    base = load_grid(grid).base_dir
    runs = sorted(p.name for p in base.iterdir() if p.is_dir() and p.name != "jobs")
    assert runs == ["seed=1__lesion.label_fraction=0.5", "seed=1__lesion.label_fraction=1.0"]
    for run in runs:
        assert RunDir(base / run).eval_table("patients").is_file()
        assert RunDir(base / run).data.is_symlink()  # pretraining and data reused, not recomputed
    assert (base / "label_efficiency.html").stat().st_size > 10_000
    assert len(array) == 2 and array["median_f2"].between(0, 1).all()
    jd = JobsDir(RunDir(base).jobs("sweep"))
    assert pd.read_csv(jd.states_csv)["state"].tolist() == ["done"] * 2
    # the first element again, alone in one process (sapkit sweep --jobs 1): the same row, bit for bit
    serial = smoke_sweep.serial
    assert len(serial) == 1 and load_grid(smoke_sweep.serial_grid).grid == {"seed": [1], "lesion.label_fraction": [0.5]}
    pd.testing.assert_frame_equal(array[array["run"] == runs[0]].reset_index(drop=True), serial)
    # the other element dies in notebook 05 (SIGKILL: no final state, no patients.csv)
    victim = runs[1]
    rd = RunDir(base / victim)
    rd.notebook_marker("05_lesion_analysis").unlink()
    rd.eval_table("patients").unlink()
    record = json.loads(jd.state(victim).read_text())
    jd.state(victim).write_text(json.dumps({**record, "state": "running"}))
    assert len(summarize_sweep(grid)) == 1  # on demand: what is done
    markers = {p: p.stat().st_mtime_ns for p in base.glob("*/notebooks/*.done.json")}
    resumed = sweep(grid, executor="local", resume=True, progress=False)
    pd.testing.assert_frame_equal(resumed, array)
    assert pd.read_csv(jd.submissions_csv)["name"].tolist()[2:] == [victim]  # only that one was resubmitted
    assert {p: p.stat().st_mtime_ns for p in markers} == markers  # nothing else re-ran, not even its notebook 04
    assert rd.notebook_marker("05_lesion_analysis").is_file()
