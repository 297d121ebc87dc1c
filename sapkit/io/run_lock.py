"""One writer per run folder: an exclusive, re-entrant folder lock.

Every command that writes into a folder (``sapkit train``, ``split``, ``predict``, ``prepare``,
``reproduce`` …) holds :class:`RunLock` on it while it runs. The lock is an OS file lock
(``flock`` through :mod:`filelock`) on ``<folder>/.sapkit.lock``; the holder's PID, host, command
and a random token are written to ``<folder>/.sapkit.lock.json``. So

* a second writer fails at once with :class:`RunLockedError` naming the holder's PID and command;
* the lock of a holder that died (killed, out of memory) is released by the OS and taken over;
* it is re-entrant: within one process (nested commands), and for child processes of the holder
  (the notebooks that ``sapkit reproduce`` runs), which inherit the token in the environment
  variable :data:`TOKEN_ENV` and are recognised by it.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sys
import time
from pathlib import Path
from typing import Any

import filelock

from sapkit.errors import SapkitError
from sapkit.io.atomic import atomic_write_text, check_writable_folder
from sapkit.io.run_paths import RunDir

__all__ = ["TOKEN_ENV", "RunLockedError", "RunLock", "lock_owner"]

#: Environment variable carrying the holder's token to its child processes (``folder=token;…``).
TOKEN_ENV = "SAPKIT_RUN_LOCK"

_HELD: dict[Path, tuple[filelock.BaseFileLock | None, int]] = {}


class RunLockedError(SapkitError):
    """Another live process holds the folder's writer lock."""


def _owner_json(folder: str | Path) -> Path:
    lock_file = RunDir(folder).lock_file
    return lock_file.with_name(lock_file.name + ".json")


def lock_owner(folder: str | Path) -> dict[str, Any]:
    """The holder record of ``folder``'s lock (empty when none was ever written or it is unreadable)."""
    try:
        owner = json.loads(_owner_json(folder).read_text())
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def _inherited_tokens() -> dict[str, str]:
    tokens = {}
    for item in os.environ.get(TOKEN_ENV, "").split(os.pathsep):
        folder, _, token = item.rpartition("=")
        if folder and token:
            tokens[folder] = token
    return tokens


class RunLock:
    """Exclusive writer lock of ``folder`` (a context manager; see the module docstring).

    Parameters
    ----------
    folder : path
        The folder written (created if missing).
    command : str, optional
        What the holder runs, shown to a second writer (default: this process's command line).
    what : str
        How the folder is named to the user in errors (``--run-dir``, ``--out``).
    """

    def __init__(self, folder: str | Path, command: str | None = None, *, what: str = "--run-dir") -> None:
        self.folder = Path(folder).absolute()
        self.command = command or " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) or "python"
        self.what = what

    def acquire(self) -> "RunLock":
        """Take the lock (or re-enter it); raise :class:`RunLockedError` if another process holds it."""
        key = self.folder.resolve() if self.folder.exists() else self.folder
        if key in _HELD:
            lock, depth = _HELD[key]
            _HELD[key] = (lock, depth + 1)
            return self
        folder = check_writable_folder(self.folder, what=self.what)
        key = folder.resolve()
        rd = RunDir(key)
        token = _inherited_tokens().get(str(key))
        if token is not None and lock_owner(key).get("token") == token:
            _HELD[key] = (None, 1)  # a child process of the holder: the parent's lock covers it
            return self
        lock = filelock.FileLock(str(rd.lock_file), timeout=0, thread_local=False)
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            owner = lock_owner(key)
            since = time.strftime("%Y-%m-%d %H:%M", time.localtime(owner["started"])) if "started" in owner else "?"
            raise RunLockedError(
                f"{self.what} {key} is in use by PID {owner.get('pid', '?')} on {owner.get('host', '?')} "
                f"(`{owner.get('command', '?')}`, since {since}); wait for it to finish, or write into another folder"
            ) from None
        except PermissionError:
            raise SapkitError(f"{self.what} {key} is not writable (read-only?); choose a writable folder") from None
        token = secrets.token_hex(8)
        atomic_write_text(_owner_json(key), json.dumps({
            "pid": os.getpid(), "host": socket.gethostname(), "command": self.command, "token": token,
            "started": time.time()}, indent=2))
        tokens = _inherited_tokens()
        tokens[str(key)] = token
        os.environ[TOKEN_ENV] = os.pathsep.join(f"{f}={t}" for f, t in tokens.items())
        _HELD[key] = (lock, 1)
        self._key = key
        return self

    def release(self) -> None:
        """Leave the lock; the OS lock is freed when the outermost holder in this process leaves."""
        key = next((k for k in (self.folder.resolve(), self.folder) if k in _HELD), None)
        if key is None:
            return
        lock, depth = _HELD[key]
        if depth > 1:
            _HELD[key] = (lock, depth - 1)
            return
        del _HELD[key]
        if lock is not None:
            tokens = _inherited_tokens()
            tokens.pop(str(key), None)
            if tokens:
                os.environ[TOKEN_ENV] = os.pathsep.join(f"{f}={t}" for f, t in tokens.items())
            else:
                os.environ.pop(TOKEN_ENV, None)
            _owner_json(key).unlink(missing_ok=True)
            lock.release()

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
