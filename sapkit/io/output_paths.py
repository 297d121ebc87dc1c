"""Where a command may write: the one home that resolves and checks every output path.

Every writing command describes, in an :class:`OutputPlan`, what it reads (files, and folders it
reads from) and what it writes (output folders, and the files inside them). :meth:`OutputPlan.check`
resolves every path (``Path.resolve``: symbolic links followed, ``..`` removed) and refuses,
*before anything is written*, with one :class:`~sapkit.errors.OutputPathError` naming the path and
the fix:

* an output file that is one of the command's inputs (the same file once resolved);
* an output folder that is an input file, the same folder as an input folder, or that lies inside
  an input folder the command reads as a whole (a DICOM tree);
* an output file that leaves its output folder (an id with path parts, a symbolic link that points
  elsewhere).

While a plan is active (:meth:`OutputPlan.active`, as the command line holds it for the whole
command), every atomic write (:func:`sapkit.io.atomic.atomic_path`) is checked against it again
(:func:`check_write`), so a write the plan did not foresee cannot replace an input or escape either.

Ids that become file names (scan and subject ids) are checked with :func:`file_stem_problem` when
they are read (the manifest, the stations CSV), so they never reach a path.
"""

from __future__ import annotations

import contextlib
import os
import unicodedata
from pathlib import Path
from typing import Iterable, Iterator

from sapkit.errors import OutputPathError

__all__ = ["OutputPlan", "file_stem_problem", "resolve_path", "check_write", "active_plan"]

_NEVER = "inputs are never overwritten"
_MAX_STEM = 200  # file names hold at most 255 bytes; leave room for the suffixes (_prob.nii.gz, …)
_ACTIVE: list[OutputPlan] = []  # the plan of the running command (a stack: commands may nest)


def file_stem_problem(value: str) -> str | None:
    """Why ``value`` cannot be the start of a file name (an id such as ``scan_id``), or None.

    A safe stem is not empty, holds no path separator (``/``, ``\\``), no ``..``, no control
    character, does not start with ``.`` (a hidden file) and has at most 200 characters.

    Examples
    --------
    >>> file_stem_problem("p01_s0") is None
    True
    >>> print(file_stem_problem("../../x"))
    holds a path part ('/', '\\' or '..')
    """
    if not value:
        return "is empty"
    if "/" in value or "\\" in value or ".." in value:
        return "holds a path part ('/', '\\' or '..')"
    if value.startswith("."):
        return "starts with '.' (a hidden file)"
    if any(unicodedata.category(c) == "Cc" for c in value):
        return "holds a control character (a tab, newline, NUL …)"
    if len(value) > _MAX_STEM:
        return f"is longer than {_MAX_STEM} characters"
    return None


def resolve_path(path: str | Path) -> Path:
    """``path`` made absolute with every symbolic link followed (the file that would really be touched).

    Raises
    ------
    OutputPathError
        The path runs through a symbolic-link loop.
    """
    try:
        return Path(os.path.expanduser(str(path))).resolve()
    except (RuntimeError, OSError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
        raise OutputPathError(f"{path} cannot be resolved ({exc}); a symbolic-link loop? point it at a real "
                              "file or folder") from None


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _shown(paths: Iterable[Path]) -> str:
    items = sorted(str(p) for p in paths)
    return str(items[:3]) + (f" and {len(items) - 3} more" if len(items) > 3 else "")


class OutputPlan:
    """What one command reads and where it writes; :meth:`check` refuses unsafe outputs up front.

    Parameters
    ----------
    command : str
        The command, for messages (``"sapkit predict"``).

    Examples
    --------
    >>> plan = OutputPlan("sapkit evaluate")
    >>> plan.reads("gt.nii.gz", "the --gt mask")
    >>> _ = plan.writes("gt.nii.gz", "--json")
    >>> try:
    ...     plan.check()
    ... except OutputPathError as exc:
    ...     print(str(exc).split(" [")[0])
    --json gt.nii.gz would overwrite input file(s)
    """

    def __init__(self, command: str) -> None:
        self.command = command
        self.lock: tuple[Path, str] | None = None  # (folder, flag): the folder the command line locks
        self._inputs: dict[Path, str] = {}
        self._input_dirs: dict[Path, tuple[str, bool]] = {}
        self._folders: dict[Path, tuple[str, Path]] = {}
        self._files: dict[Path, tuple[str, Path, Path | None]] = {}

    def __repr__(self) -> str:
        return (f"OutputPlan({self.command!r}; inputs: {len(self._inputs)} files, {len(self._input_dirs)} folders; "
                f"outputs: {len(self._folders)} folders, {len(self._files)} files)")

    # -- what the command reads -------------------------------------------------------------
    def reads(self, path: str | Path | None, label: str) -> None:
        """An input file (``label`` says what it is: ``"the --gt mask"``); ``None`` or ``""`` is ignored."""
        if path:
            self._inputs.setdefault(resolve_path(path), label)

    def reads_folder(self, path: str | Path | None, label: str, *, whole: bool = False) -> None:
        """An input folder: no output folder may be it; with ``whole`` (read recursively) none may lie inside it."""
        if path:
            key = resolve_path(path)
            old = self._input_dirs.get(key)
            self._input_dirs[key] = (old[0] if old else label, whole or bool(old and old[1]))

    # -- what the command writes ------------------------------------------------------------
    def writes_folder(self, path: str | Path, flag: str, *, lock: bool = False) -> Path:
        """An output folder (``flag`` names the option that set it); ``lock``: the command line locks it."""
        given = Path(path)
        self._folders.setdefault(resolve_path(given), (flag, given))
        if lock:
            self.locks(given, flag)
        return given

    def locks(self, path: str | Path, flag: str) -> None:
        """The folder the command line holds the writer lock of (:mod:`sapkit.io.run_lock`) while it runs."""
        self.lock = (Path(path), flag)

    def writes(self, path: str | Path, flag: str, *, folder: str | Path | None = None) -> Path:
        """An output file; with ``folder`` it must stay inside that output folder (declared too)."""
        given = Path(path)
        if folder is not None:
            self.writes_folder(folder, flag)
        self._files.setdefault(resolve_path(given), (flag, given, None if folder is None else resolve_path(folder)))
        return given

    def writes_in(self, folder: str | Path, names: Iterable[str], flag: str) -> list[Path]:
        """Output files ``folder/name`` for every name (which may hold sub-folders, never ``..``)."""
        return [self.writes(Path(folder) / name, flag, folder=folder) for name in names]

    def single_files(self) -> list[tuple[Path, str]]:
        """Output files outside any declared output folder (``--json FILE``), as given, with their flag."""
        return [(given, flag) for flag, given, folder in self._files.values() if folder is None]

    # -- the checks -------------------------------------------------------------------------
    def check(self) -> OutputPlan:
        """Raise :class:`~sapkit.errors.OutputPathError` for the first unsafe output; return the plan."""
        for real, (flag, given) in self._folders.items():
            self._check_folder(real, flag, given)
        clashes: dict[str, list[Path]] = {}
        for real, (flag, given, folder) in self._files.items():
            if real in self._inputs:
                clashes.setdefault(flag, []).append(real)
        for flag, paths in clashes.items():
            subject = self._subject(flag)
            raise OutputPathError(
                f"{flag} {subject or self._files[paths[0]][1]} would overwrite input file(s) {_shown(paths)}: "
                f"{self._inputs[min(paths)]}; choose another {'folder' if subject else 'file'} ({_NEVER})")
        for real, (flag, given, folder) in self._files.items():
            if folder is not None and not _inside(real, folder):
                raise OutputPathError(
                    f"{flag}: the output {given} leaves the output folder {folder} (it resolves to {real}): an id that "
                    "holds path parts, or a symbolic link pointing elsewhere; fix the id or remove the link")
            whole = self._whole_input(real)
            if whole is not None:
                raise self._inside_error(flag, given, whole)
        return self

    def _subject(self, flag: str) -> Path | None:
        """The output folder set by ``flag`` (the user's own words), if the flag names a folder."""
        return next((given for f, given in self._folders.values() if f == flag), None)

    def _whole_input(self, real: Path) -> Path | None:
        for folder, (_, whole) in self._input_dirs.items():
            if whole and _inside(real, folder):
                return folder
        return None

    def _inside_error(self, flag: str, given: Path, folder: Path) -> OutputPathError:
        return OutputPathError(f"{flag} {given} lies inside the input {self._input_dirs[folder][0]} {folder}; sapkit "
                               "never writes into its input — choose a place outside it")

    def _check_folder(self, real: Path, flag: str, given: Path) -> None:
        if real in self._inputs:
            raise OutputPathError(f"{flag} {given} is an input file ({self._inputs[real]}); choose a new folder "
                                  f"({_NEVER})")
        if real in self._input_dirs:
            raise OutputPathError(f"{flag} {given} is the input {self._input_dirs[real][0]}; choose a new folder "
                                  f"({_NEVER})")
        whole = self._whole_input(real)
        if whole is not None:
            raise self._inside_error(flag, given, whole)

    # -- the guard while the command runs ---------------------------------------------------
    def allows(self, path: str | Path) -> str | None:
        """Why writing ``path`` breaks the plan (an input, or outside every output), or None."""
        real = resolve_path(path)
        if real in self._inputs:
            return f"it is an input of {self.command} ({self._inputs[real]})"
        whole = self._whole_input(real)
        if whole is not None:
            return f"it lies inside the input {self._input_dirs[whole][0]} {whole}"
        if real in self._files or any(_inside(real, f) for f in self._folders):
            return None
        return (f"it lies outside the outputs of {self.command} "
                f"({_shown([*self._folders, *self._files]) if self._folders or self._files else 'none'})")

    @contextlib.contextmanager
    def active(self) -> Iterator[OutputPlan]:
        """Check every atomic write against this plan while the block runs."""
        _ACTIVE.append(self)
        try:
            yield self
        finally:
            _ACTIVE.remove(self)


def active_plan() -> OutputPlan | None:
    """The plan of the running command, if any."""
    return _ACTIVE[-1] if _ACTIVE else None


def check_write(path: str | Path) -> None:
    """Refuse a write the running command's plan does not allow (no-op without an active plan).

    Raises
    ------
    OutputPathError
        ``path`` is an input of the command or lies outside its outputs.
    """
    plan = active_plan()
    if plan is None:
        return
    why = plan.allows(path)
    if why is not None:
        raise OutputPathError(f"refusing to write {path}: {why}; nothing was overwritten — pick outputs that are "
                              "not inputs (and report this as a sapkit bug if the paths were fine)")
