"""Local job arrays give each element the machine's GPUs (issue 23: `--executor local` hid them, so a sweep on
a GPU workstation trained on the CPU without a word); the GPU count is faked through CUDA_VISIBLE_DEVICES."""

from __future__ import annotations

import subprocess

import pytest

from sapkit.errors import ConfigError
from sapkit.jobs.executors import Resources, run_array


def _recorders(tmp_path, names):
    """Elements that write the CUDA_VISIBLE_DEVICES they run with into ``tmp_path/<name>.txt``."""
    return {n: (subprocess.run, (["sh", "-c", f'printf "%s" "${{CUDA_VISIBLE_DEVICES-unset}}" > {tmp_path / n}.txt'],))
            for n in names}


def test_one_gpu_per_element_round_robin_and_the_assignment_is_printed(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2")  # a workstation with three GPUs
    names = ["a", "b", "c", "d"]
    states = run_array(_recorders(tmp_path, names), tmp_path / "jobs", executor="local",
                       resources=Resources(gpus=1, array_parallelism=1), progress=False)
    assert states["state"].tolist() == ["done"] * 4
    assert [(tmp_path / f"{n}.txt").read_text() for n in names] == ["0", "1", "2", "0"]
    out = capsys.readouterr().out
    assert "local jobs: 3 GPU(s) on this machine (0, 1, 2); 1 per element, round robin" in out
    assert "  a: GPU 0 (CUDA_VISIBLE_DEVICES='0')" in out and "  d: GPU 0 (CUDA_VISIBLE_DEVICES='0')" in out


def test_by_default_every_element_sees_every_gpu_and_gpus_0_hides_them(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    run_array(_recorders(tmp_path, ["x"]), tmp_path / "jobs", executor="local", resources=Resources(), progress=False)
    assert (tmp_path / "x.txt").read_text() == "2,3"  # was '' before: the element trained on the CPU
    assert "every element sees all of them" in capsys.readouterr().out
    run_array(_recorders(tmp_path, ["y"]), tmp_path / "jobs0", executor="local", resources=Resources(gpus=0),
              progress=False)
    assert (tmp_path / "y.txt").read_text() == ""


def test_more_gpus_than_the_machine_has_is_refused_before_anything_runs(tmp_path, monkeypatch):
    from sapkit.jobs.gpus import GpuPool, machine_gpus

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with pytest.raises(ConfigError, match=r"--gpus 2 asks for 2 GPU\(s\) per element, but this machine has 1 \(0\)"):
        run_array(_recorders(tmp_path, ["x"]), tmp_path / "jobs", executor="local", resources=Resources(gpus=2),
                  progress=False)
    assert not (tmp_path / "x.txt").exists()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(ConfigError, match="this machine has no CUDA GPU"):
        GpuPool(machine_gpus(), 1)


def test_the_pool_gives_a_free_gpu_to_the_next_element():
    from sapkit.jobs.gpus import GpuPool, machine_gpus

    pool = GpuPool(["0", "1"], 1)
    assert [pool.take("a"), pool.take("b")] == ["0", "1"]
    pool.release("a")
    assert pool.take("c") == "0"  # GPU 1 is still busy with b
    assert GpuPool(["0", "1", "2", "3"], 2).take("x") == "0,1"
    assert machine_gpus() is not None


def test_machine_gpus_reads_cuda_visible_devices(monkeypatch):
    from sapkit.jobs.gpus import machine_gpus

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,GPU-8c1f,-1,3")
    assert machine_gpus() == ["1", "GPU-8c1f"]  # CUDA stops at the first invalid entry
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert machine_gpus() == []
