"""Run metadata: the CPU, the kernels torch dispatches to, threads; the ISA pin."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch

from sapkit.config import load_config
from sapkit.io.machine import PINNED_ISA_ENV, machine_info, machine_summary, pin_isa
from sapkit.io.run_paths import RunDir
from sapkit.io.run_record import prepare_run_dir


def test_versions_json_records_cpu_capability_and_threads(tmp_path):
    rd = prepare_run_dir(RunDir(tmp_path / "run"), load_config("smoke"))
    machine = json.loads(rd.versions_json.read_text())["machine"]
    assert machine["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert machine["torch_threads"] == torch.get_num_threads()
    assert machine["logical_cpus"] == os.cpu_count()
    assert machine["cpu_model"] and machine["cpu_isa"]
    assert machine["cpu_capability"] in machine_summary(machine) and machine["cpu_model"] in machine_summary(machine)


def test_pin_isa_keeps_user_settings_and_reaches_a_new_process():
    env = {"ONEDNN_MAX_CPU_ISA": "SSE41"}
    added = pin_isa(env)
    assert env["ONEDNN_MAX_CPU_ISA"] == "SSE41" and "ONEDNN_MAX_CPU_ISA" not in added
    assert {k: env[k] for k in added} == {k: v for k, v in PINNED_ISA_ENV.items() if k != "ONEDNN_MAX_CPU_ISA"}
    child = subprocess.run(
        [sys.executable, "-c", "import json; from sapkit.io.machine import machine_info; print(json.dumps(machine_info()))"],
        env={**os.environ, **PINNED_ISA_ENV}, capture_output=True, text=True, check=True)
    info = json.loads(child.stdout)
    assert info["cpu_capability"] == "AVX2" and info["isa_pinned"]
    assert info["numerics_env"]["MKL_CBWR"] == PINNED_ISA_ENV["MKL_CBWR"]
    assert "ISA pinned to AVX2" in machine_summary(info)


def test_summary_of_an_old_run_without_machine():
    assert machine_summary({}) == "machine not recorded"
    assert not machine_info()["isa_pinned"] or all(os.environ.get(k) == v for k, v in PINNED_ISA_ENV.items())
