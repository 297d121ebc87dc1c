"""Thread budgets of parallel local workers: the variables reach child processes, user settings win, all restored."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sapkit.pipeline.threads import THREAD_VARIABLES, thread_budget, threads_per_worker

_READ = "import json, os; print(json.dumps({k: os.environ.get(k) for k in %r}))" % (THREAD_VARIABLES,)


def _child_env() -> dict:
    return json.loads(subprocess.run([sys.executable, "-c", _READ], capture_output=True, text=True, check=True).stdout)


@pytest.mark.parametrize("workers, cpus, expected", [(1, 2, 2), (2, 2, 1), (4, 16, 4), (3, 16, 5), (8, 2, 1)])
def test_threads_per_worker(workers, cpus, expected):
    assert threads_per_worker(workers, cpus) == expected


def test_children_inherit_the_budget_and_user_settings_win(monkeypatch):
    for key in THREAD_VARIABLES:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "3")  # the user's choice
    with thread_budget(2, cpus=8) as set_here:
        child = _child_env()
    assert child == {"OMP_NUM_THREADS": "4", "MKL_NUM_THREADS": "3", "OPENBLAS_NUM_THREADS": "4",
                     "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": "4"}
    assert "MKL_NUM_THREADS" not in set_here
    assert {k: os.environ.get(k) for k in THREAD_VARIABLES} == {
        "OMP_NUM_THREADS": None, "MKL_NUM_THREADS": "3", "OPENBLAS_NUM_THREADS": None,
        "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": None}  # restored
    with thread_budget(1, cpus=8) as nothing:
        assert nothing == {} and os.environ.get("OMP_NUM_THREADS") is None


def test_the_budget_is_restored_after_an_error(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    with pytest.raises(RuntimeError), thread_budget(4, cpus=8):
        raise RuntimeError("worker failed")
    assert "OMP_NUM_THREADS" not in os.environ
