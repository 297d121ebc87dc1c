"""Parallel local workers share the cores: the wait policy reaches child processes, user settings win,
everything is restored, and a sweep's parallel workers are the ones that get it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sapkit.jobs.threads import WAIT_POLICY, shared_cores


def _child(var: str) -> str:
    code = f"import os; print(os.environ.get({var!r}, 'unset'))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_children_inherit_the_wait_policy_and_it_is_restored(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    with shared_cores(2) as set_here:
        assert _child("OMP_WAIT_POLICY") == "PASSIVE" and set_here == WAIT_POLICY
        assert _child("OMP_NUM_THREADS") == os.environ.get("OMP_NUM_THREADS", "unset")  # counts untouched
    assert "OMP_WAIT_POLICY" not in os.environ
    with shared_cores(1) as nothing:
        assert nothing == {} and _child("OMP_WAIT_POLICY") == "unset"


def test_the_users_setting_wins_and_errors_restore(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    with shared_cores(4) as set_here:
        assert set_here == {} and _child("OMP_WAIT_POLICY") == "ACTIVE"
    monkeypatch.delenv("OMP_WAIT_POLICY")
    with pytest.raises(RuntimeError), shared_cores(4):
        raise RuntimeError("worker failed")
    assert "OMP_WAIT_POLICY" not in os.environ


def test_parallel_local_arrays_run_their_elements_with_passive_waiting(tmp_path, monkeypatch):
    from sapkit.jobs.executors import Resources, run_array

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    out = tmp_path / "policy"
    out.mkdir()
    # os.system pickles by reference (jobs cannot import this test module): each element records its env
    elements = {f"e{i}": (os.system, (f'printf %s "${{OMP_WAIT_POLICY:-unset}}" > {out / f"e{i}.txt"}',))
                for i in range(2)}
    run_array(elements, tmp_path / "jobs", executor="local", resources=Resources(array_parallelism=2), progress=False)
    assert {p.read_text() for p in out.iterdir()} == {"PASSIVE"}
    assert "OMP_WAIT_POLICY" not in os.environ

