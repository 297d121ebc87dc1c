"""One writer per run folder: a second writer fails at once, a dead holder's lock is taken over,
child processes of the holder (the notebooks of ``sapkit reproduce``) are let in."""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sapkit.io.run_lock import TOKEN_ENV, RunLock, RunLockedError, lock_owner
from sapkit.io.run_paths import RunDir

_HOLDER = """
import sys, time
from sapkit.io.run_lock import RunLock
with RunLock(sys.argv[1], "sapkit train lesion --run-dir " + sys.argv[1]):
    print("locked", flush=True)
    time.sleep(60)
"""


def _start_holder(folder):
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_writer_fails_at_once_naming_the_holder(tmp_path, tiny_cohort):
    """Refused without waiting (timeout 0; how fast: benchmarks/bench_run_lock.py), nothing written."""
    run = tmp_path / "run"
    holder = _start_holder(run)
    try:
        second = subprocess.run(
            [sys.executable, "-c", "from sapkit.cli import main; raise SystemExit(main())",
             "split", str(tiny_cohort), "--profile", "smoke", "--run-dir", str(run)],
            capture_output=True, text=True, timeout=60)
    finally:
        holder.kill()
        holder.wait()
    assert second.returncode == 1, second.stderr
    assert "Traceback" not in second.stderr
    assert f"is in use by PID {holder.pid}" in second.stderr and "sapkit train lesion --run-dir" in second.stderr
    assert not RunDir(run).splits_json.exists()  # nothing written by the refused writer
    with pytest.raises(RunLockedError):
        holder2 = _start_holder(run)
        try:
            RunLock(run).acquire()
        finally:
            holder2.kill()
            holder2.wait()


def test_the_lock_of_a_killed_holder_is_taken_over(tmp_path):
    holder = _start_holder(tmp_path)
    assert lock_owner(tmp_path)["pid"] == holder.pid
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    with RunLock(tmp_path, "sapkit split"):
        owner = lock_owner(tmp_path)
        assert owner["pid"] == os.getpid() and owner["command"] == "sapkit split"
    assert lock_owner(tmp_path) == {}  # released: the record is gone


def test_child_processes_of_the_holder_are_let_in_others_are_not(tmp_path):
    code = ("import sys; from sapkit.io.run_lock import RunLock, RunLockedError\n"
            "try:\n    RunLock(sys.argv[1]).acquire(); print('in')\n"
            "except RunLockedError as e:\n    print('refused')\n")
    with RunLock(tmp_path, "sapkit reproduce"):
        assert os.environ[TOKEN_ENV].endswith("=" + lock_owner(tmp_path)["token"])
        child = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
        env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
        stranger = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, env=env)
        forged = dict(env, **{TOKEN_ENV: f"{tmp_path.resolve()}=0123456789abcdef"})
        forger = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, env=forged)
        with RunLock(tmp_path):  # nested in one process: re-entrant
            assert lock_owner(tmp_path)["command"] == "sapkit reproduce"
        assert lock_owner(tmp_path)["command"] == "sapkit reproduce"  # still held by the outer one
    assert (child.stdout.strip(), stranger.stdout.strip(), forger.stdout.strip()) == ("in", "refused", "refused")
    assert TOKEN_ENV not in os.environ


def test_run_folder_that_is_a_file_or_read_only_is_refused(tmp_path):
    from sapkit.errors import SapkitError

    (tmp_path / "afile").write_text("x")
    with pytest.raises(SapkitError, match=r"--run-dir .*afile is a file, not a folder"):
        RunLock(tmp_path / "afile").acquire()
    with pytest.raises(SapkitError, match=r"--out .*afile/sub lies inside a file"):
        RunLock(tmp_path / "afile" / "sub", what="--out").acquire()
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        target = ro
        if os.access(ro, os.W_OK):  # root ignores modes; sysfs refuses even root
            target = Path("/sys/kernel")
            if not target.is_dir():
                pytest.skip("running as root without sysfs: no folder here refuses writes")
        with pytest.raises(SapkitError, match=rf"--run-dir {re.escape(str(target))} is not writable \(read-only\?\)"):
            RunLock(target).acquire()
    finally:
        ro.chmod(0o755)
