"""Atomic file writes: a crash never leaves a truncated output.

Every writer stages its file in a hidden folder of its own next to the destination
(``.sapkit-tmp.<host>.<pid>``, same file system) and renames it into place when complete; folder
globs such as ``*.json`` never see a half-written file, and two processes writing into one folder
never share (or remove) each other's staging folder. :func:`remove_stale_temporaries` clears what a
killed writer left, and only that.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import socket
import tempfile
from pathlib import Path
from typing import Any, Iterator

from sapkit.errors import SapkitError
from sapkit.io.output_paths import check_write

__all__ = [
    "STAGING_DIR", "staging_dir", "atomic_path", "atomic_write_text", "atomic_write_csv", "remove_stale_temporaries",
    "check_writable_folder", "check_output_file",
]

#: Name prefix of the hidden per-process staging folders created next to atomically written files.
STAGING_DIR = ".sapkit-tmp"

_HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:40] or "host"
_STAGING_RE = re.compile(re.escape(STAGING_DIR) + r"(?:\.(?P<host>[A-Za-z0-9_-]+)\.(?P<pid>\d+))?")
_RETRIES = 50
_FULL = {errno.ENOSPC, errno.EDQUOT}  # no space left; disk quota exceeded
_WRITE_FAILED = ("file write failed", "PytorchStreamWriter failed")


def staging_dir(folder: str | Path) -> Path:
    """This process's hidden staging folder inside ``folder`` (``.sapkit-tmp.<host>.<pid>``)."""
    return Path(folder) / f"{STAGING_DIR}.{_HOST}.{os.getpid()}"


def _make_temporary(path: Path, suffix: str) -> Path:
    """Create an empty temporary file for ``path`` in this process's staging folder.

    Threads of one process share the folder; one may remove it (when empty) between another's
    ``mkdir`` and ``mkstemp``, so that case is retried.
    """
    tmp_dir = staging_dir(path.parent)
    for _ in range(_RETRIES):
        tmp_dir.mkdir(exist_ok=True)
        try:
            fd, tmp = tempfile.mkstemp(prefix=f"{path.name.split('.')[0]}.", suffix=suffix, dir=tmp_dir)
        except FileNotFoundError:
            continue
        os.close(fd)
        return Path(tmp)
    raise OSError(f"could not create a temporary file in {tmp_dir}")  # pragma: no cover


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path for ``path``; rename it onto ``path`` on success.

    The temporary file lives in this process's hidden staging folder next to ``path`` (same file
    system, so the rename is atomic; folder globs like ``*.json`` never see half-written files)
    and keeps the final suffix (``.nii.gz``) so writers that infer the format from the name work.
    On error the temporary file is removed and ``path`` is untouched; a full disk (``ENOSPC``,
    ``EDQUOT``, or torch's "file write failed") is one :class:`SapkitError` naming ``path``. The file gets the usual
    permissions (0666 minus the umask), not ``mkstemp``'s private 0600. While a command's output
    plan is active, a ``path`` it does not allow is refused first (:func:`sapkit.io.output_paths.check_write`).
    """
    path = Path(path)
    check_write(path)  # the running command's output plan (sapkit.io.output_paths), if any
    suffix = "".join(path.suffixes) or ".tmp"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp_path = _make_temporary(path, suffix)
    except OSError as exc:  # read-only or missing folder, a file in the way
        raise SapkitError(f"cannot write {path}: {exc.strerror or exc} in {path.parent}; "
                          "choose a writable location") from None
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except OSError as exc:
        if exc.errno not in _FULL:
            raise
        raise SapkitError(f"cannot write {path}: no space left on the device ({exc.strerror or exc}); free space on "
                          f"the file system of {path.parent} or choose another output folder — {path.name} was not "
                          "replaced") from None
    except RuntimeError as exc:  # torch.save's C++ writer reports a full disk this way
        if not any(text in str(exc) for text in _WRITE_FAILED):
            raise
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
        raise SapkitError(f"cannot write {path}: the writer failed ({first[-160:]}); the disk is probably full — free "
                          f"space on the file system of {path.parent} or choose another output folder — {path.name} "
                          "was not replaced") from None
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
        with contextlib.suppress(OSError):
            tmp_path.parent.rmdir()  # only when empty: another thread may be using it


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(folder: str | Path) -> int:
    """Delete what killed writers left in ``folder``'s hidden staging folders.

    A staging folder is stale when its process (named in the folder) no longer runs on this host;
    folders of live processes, of this process and of other hosts are left alone. Returns the
    number of files removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    removed = 0
    for tmp_dir in folder.iterdir():
        match = _STAGING_RE.fullmatch(tmp_dir.name)
        if match is None or not tmp_dir.is_dir():
            continue
        if match["pid"] is not None:
            pid = int(match["pid"])
            if match["host"] != _HOST or pid == os.getpid() or _pid_alive(pid):
                continue
        for p in tmp_dir.iterdir():
            if p.is_file():
                p.unlink(missing_ok=True)
                removed += 1
        with contextlib.suppress(OSError):
            tmp_dir.rmdir()
    return removed


def check_writable_folder(folder: str | Path, *, what: str = "--run-dir") -> Path:
    """Create ``folder`` if needed and check a file can be written in it; return it absolute.

    Raises
    ------
    SapkitError
        ``folder`` is an existing file, lies under a file, or is not writable.
    """
    folder = Path(folder).absolute()
    if folder.exists() and not folder.is_dir():
        raise SapkitError(f"{what} {folder} is a file, not a folder; pass a folder path (it is created if missing)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise SapkitError(f"{what} {folder} lies inside a file, not a folder; pass a folder path") from None
    except OSError as exc:
        raise SapkitError(f"{what} {folder} cannot be created ({exc.strerror}); choose a writable folder") from None
    if not os.access(folder, os.W_OK | os.X_OK) or not _can_create_file(folder):
        raise SapkitError(f"{what} {folder} is not writable (read-only?); choose a writable folder or fix its permissions")
    return folder


def _can_create_file(folder: Path) -> bool:
    """Whether a file can really be created in ``folder`` (modes say nothing for root or read-only mounts)."""
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".sapkit-probe-")
    except OSError:
        return False
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return True


def check_output_file(path: str | Path, *, what: str = "--json") -> Path:
    """Check that a file can be (re)written at ``path`` (its folder is created); return it absolute.

    Raises
    ------
    SapkitError
        ``path`` is a folder, or its folder is a file or not writable.
    """
    path = Path(path).absolute()
    if path.is_dir():
        raise SapkitError(f"{what} {path} is a folder; pass a file path such as {path / 'out.json'}")
    check_writable_folder(path.parent, what=f"folder of {what}")
    if path.exists() and not os.access(path, os.W_OK):
        raise SapkitError(f"{what} {path} is read-only; choose another file or fix its permissions")
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically and return the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


def atomic_write_csv(table: Any, path: str | Path) -> Path:
    """Write a pandas DataFrame to ``path`` as CSV (no index column) atomically and return the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    return path
