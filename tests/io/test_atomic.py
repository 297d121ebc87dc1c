import errno
import os
import subprocess
import sys

import pytest

from sapkit.errors import SapkitError
from sapkit.io.atomic import STAGING_DIR, atomic_path, atomic_write_text, remove_stale_temporaries, staging_dir


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "x.nii.gz"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("crash")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.nii.gz"]


def test_atomic_write_uses_normal_permissions_and_hides_temp_files(tmp_path):
    path = atomic_write_text(tmp_path / "figures" / "a.json", "{}")
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    with atomic_path(tmp_path / "figures" / "b.json") as tmp:
        assert tmp.parent == staging_dir(tmp_path / "figures")  # per process, hidden
        assert tmp.parent.name.startswith(STAGING_DIR + ".") and tmp.parent.name.endswith(f".{os.getpid()}")
        assert list((tmp_path / "figures").glob("*.json")) == [path]
        tmp.write_text("{}")
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["a.json", "b.json"]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_remove_stale_temporaries_removes_only_dead_writers_files(tmp_path):
    keep = tmp_path / "log.csv"
    keep.write_text("epoch\n1\n")
    host = staging_dir(tmp_path).name.split(".")[-2]
    dead = tmp_path / f"{STAGING_DIR}.{host}.{_dead_pid()}"  # left by a killed writer
    dead.mkdir()
    (dead / "checkpoint_last.abc123.pt").write_bytes(b"left by a killed writer")
    (dead / "model_final.x.pt").write_bytes(b"half")
    legacy = tmp_path / STAGING_DIR  # the shared folder of older versions
    legacy.mkdir()
    (legacy / "old.json").write_text("{")
    live_proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        live = tmp_path / f"{STAGING_DIR}.{host}.{live_proc.pid}"  # another writer, still running
        live.mkdir()
        (live / "model_best.y.pt").write_bytes(b"being written")
        other_host = tmp_path / f"{STAGING_DIR}.otherhost.{_dead_pid()}"
        other_host.mkdir()
        (other_host / "z.csv").write_text("")
        assert remove_stale_temporaries(tmp_path) == 3
        assert not dead.exists() and not legacy.exists()
        assert (live / "model_best.y.pt").read_bytes() == b"being written"
        assert (other_host / "z.csv").exists() and keep.read_text() == "epoch\n1\n"
        assert remove_stale_temporaries(tmp_path) == 0
    finally:
        live_proc.kill()
        live_proc.wait()


_WRITER = """
import sys
from sapkit.io.atomic import atomic_write_text
folder, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
failures = 0
for i in range(n):
    try:
        atomic_write_text(f"{folder}/f{i % 7}.txt", f"{tag} {i}")
    except OSError as exc:
        failures += 1
print(failures)
"""


def test_three_processes_writing_3000_files_each_into_one_folder_never_fail(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path), f"w{k}", "3000"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in range(3)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [r[1][-2000:] for r in results]
    assert [int(out) for out, _ in results] == [0, 0, 0]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"f{i}.txt" for i in range(7)]  # no staging left
    assert all(p.read_text().split()[0] in {"w0", "w1", "w2"} for p in tmp_path.iterdir())


@pytest.mark.parametrize("error", [
    OSError(errno.ENOSPC, "No space left on device"), OSError(errno.EDQUOT, "Disk quota exceeded"),
    RuntimeError("[enforce fail at inline_container.cc:664] . PytorchStreamWriter failed writing file data/0: "
                 "file write failed"),
], ids=["ENOSPC", "EDQUOT", "torch"])
def test_a_full_disk_is_one_message_naming_the_file_and_the_old_file_stays(tmp_path, error):
    """Issue 23: full-disk messages name the file being written (every command writes through atomic_path)."""
    target = tmp_path / "out" / "p0_prob.nii.gz"
    target.parent.mkdir()
    target.write_bytes(b"the previous map")
    with pytest.raises(SapkitError, match=r"cannot write .*out/p0_prob\.nii\.gz: .*(no space left|disk is probably full)"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half a ma")
            raise error
    assert target.read_bytes() == b"the previous map"
    assert sorted(p.name for p in target.parent.iterdir()) == ["p0_prob.nii.gz"]  # no staging left


def test_other_errors_pass_through_unchanged(tmp_path):
    with pytest.raises(RuntimeError, match="a bug"):
        with atomic_path(tmp_path / "x.txt"):
            raise RuntimeError("a bug")
    with pytest.raises(PermissionError):
        with atomic_path(tmp_path / "y.txt"):
            raise PermissionError(errno.EACCES, "denied")
