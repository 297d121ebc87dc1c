"""Atomic file writes: a crash never leaves a truncated output.

Every writer stages its file in a hidden folder next to the destination (:data:`STAGING_DIR`,
same file system) and renames it into place when complete; folder globs such as ``*.json``
never see a half-written file. :func:`remove_stale_temporaries` clears what a killed writer left.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

__all__ = ["STAGING_DIR", "atomic_path", "atomic_write_text", "remove_stale_temporaries"]

#: Hidden staging folder created next to every atomically written file (removed when empty).
STAGING_DIR = ".sapkit-tmp"


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path for ``path``; rename it onto ``path`` on success.

    The temporary file lives in a hidden :data:`STAGING_DIR` folder next to ``path`` (same file
    system, so the rename is atomic; folder globs like ``*.json`` never see half-written files)
    and keeps the final suffix (``.nii.gz``) so writers that infer the format from the name work.
    On error the temporary file is removed and ``path`` is untouched. The file gets the usual
    permissions (0666 minus the umask), not ``mkstemp``'s private 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = path.parent / STAGING_DIR
    tmp_dir.mkdir(exist_ok=True)
    suffix = "".join(path.suffixes) or ".tmp"
    fd, tmp = tempfile.mkstemp(prefix=f"{path.name.split('.')[0]}.", suffix=suffix, dir=tmp_dir)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
        with contextlib.suppress(OSError):
            tmp_dir.rmdir()  # only when empty: another writer may be using it


def remove_stale_temporaries(folder: str | Path) -> int:
    """Delete what a killed writer left in ``folder``'s hidden :data:`STAGING_DIR` staging folder.

    Call it only when no other process writes into ``folder`` (e.g. when resuming a run whose
    process died). Returns the number of files removed.
    """
    tmp_dir = Path(folder) / STAGING_DIR
    if not tmp_dir.is_dir():
        return 0
    removed = 0
    for p in tmp_dir.iterdir():
        if p.is_file():
            p.unlink(missing_ok=True)
            removed += 1
    with contextlib.suppress(OSError):
        tmp_dir.rmdir()
    return removed


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically and return the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path
