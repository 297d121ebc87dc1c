"""Progress bars, one home: every bar of the kit comes from :func:`progress_bar`.

A bar is ``tqdm.auto``'s (a widget in JupyterLab, text in a terminal) unless
:func:`use_text_progress` switched this process to plain text bars. A widget bar drawn in a kernel
no browser watches (papermill, ``sapkit reproduce``) is stored in the executed notebook at "0 %"
(the widget state is not saved), as if nothing ran; each notebook's setup cell therefore calls
:func:`use_text_progress`, which checks :func:`is_headless`. tqdm is imported when the first bar
is made, not with this module: ``tqdm.auto`` imports IPython when it is installed, and the
command line's start-up time is measured (``sapkit evaluate`` on one case makes no bar).

A text bar inside a kernel (a notebook under papermill) prints nothing while it runs and one line
on standard output when it closes (none for ``leave=False`` bars): stderr is stored in an executed
notebook as a pink error box, and the intermediate states (``0/18`` …) would stay in the stored
text as bars stuck below 100 %. A finished bar's line reads ``n/n``; a bar that stopped early shows
where it stopped. ``sapkit reproduce`` prints the live per-epoch progress on the terminal
(:class:`sapkit.pipeline.progress.RunMonitor`). Outside a kernel (a script) text bars refresh every
10 s on stderr, as tqdm does.
"""

from __future__ import annotations

import sys
from typing import Any, Iterable

__all__ = ["progress_bar", "use_text_progress", "is_headless"]

_TEXT_BARS = False  # set by use_text_progress: plain text bars in this process


def progress_bar(iterable: Iterable[Any] | None = None, *, desc: str | None = None, total: int | None = None,
                 unit: str = "it", leave: bool = True, disable: bool = False, **kwargs: Any) -> Any:
    """A tqdm bar over ``iterable`` (or a manual one of ``total`` steps: call ``.update()``).

    Parameters
    ----------
    iterable : iterable, optional
        What the bar wraps; without it, ``total`` steps counted by ``.update()``.
    desc, total, unit, leave, disable
        As in tqdm (``disable=True``: no output, the iterable passes through).
    **kwargs
        Further tqdm options (``initial``, ``file`` …).

    Examples
    --------
    >>> import io
    >>> list(progress_bar(range(3), desc="demo", file=io.StringIO()))
    [0, 1, 2]
    """
    if _TEXT_BARS:
        bar_class = _text_tqdm()
    else:
        from tqdm.auto import tqdm as bar_class
    return bar_class(iterable, desc=desc, total=total, unit=unit, leave=leave, disable=disable, **kwargs)


def _text_tqdm() -> type:
    from tqdm.std import tqdm as _std

    class _TextTqdm(_std):
        """A text bar: in a kernel, one stdout line when it closes; elsewhere a refresh every 10 s at most."""

        def __init__(self, *args: Any, **kwargs: Any):
            kwargs.setdefault("mininterval", 10.0)
            kwargs.setdefault("ascii", True)
            self._final_line_only = _kernel_parent() is not None and kwargs.get("file") is None
            if self._final_line_only:
                kwargs["file"] = sys.stdout
                kwargs["delay"] = float("inf")  # tqdm draws nothing before `delay` seconds: never
            super().__init__(*args, **kwargs)

        def display(self, msg: str | None = None, pos: int | None = None) -> bool:
            if self._final_line_only:  # set_postfix/set_description refresh too: nothing until close
                return True
            return super().display(msg, pos)

        def close(self) -> None:
            if self._final_line_only and not self.disable and (self.leave or (self.leave is None and not self.pos)):
                self.fp.write(f"{self}\n")
                self.fp.flush()
            super().close()

    return _TextTqdm


def use_text_progress(headless: bool | None = None) -> bool:
    """Make this process's bars plain text when no browser is attached; return whether it did.

    Called in each notebook's setup cell; in a live JupyterLab (``headless`` False) the widget
    bars are kept.

    Parameters
    ----------
    headless : bool, optional
        Default :func:`is_headless`.
    """
    global _TEXT_BARS
    _TEXT_BARS = bool(is_headless() if headless is None else headless)
    return _TEXT_BARS


def is_headless() -> bool:
    """Whether no person's browser is attached to the code running now.

    Returns
    -------
    bool
        ``True`` when no IPython kernel is running (plain Python, pytest, a script), or when the
        request the kernel is executing carries no ``metadata.cellId``. JupyterLab 4 and
        Notebook 7 send the id of the cell they run (checked by ``tests/notebooks/test_browser.py``);
        nbclient, and therefore papermill and ``sapkit reproduce``, do not (checked by a real
        papermill run in ``tests/plotting/test_viewers.py``).

    Notes
    -----
    Whether ``papermill``/``nbclient`` is *imported* says nothing: they always drive a kernel in
    another process, and a person may import them in a live notebook. The rule errs towards
    ``True``: a frontend that omits the cell id (Voilà, some IDEs) gets the static plotly view
    and text bars, which is safe; a wrong ``False`` could hang a headless run.
    """
    parent = _kernel_parent()
    if parent is None:
        return True
    metadata = parent.get("metadata") or {}
    return not metadata.get("cellId")


def _kernel_parent() -> dict[str, Any] | None:
    """The message the kernel is answering now, or ``None`` outside an IPython kernel."""
    ipython_mod = sys.modules.get("IPython")
    if ipython_mod is None:
        return None
    shell = ipython_mod.get_ipython()
    kernel = getattr(shell, "kernel", None)
    if kernel is None or not hasattr(kernel, "get_parent"):
        return None
    try:
        return kernel.get_parent("shell") or {}
    except TypeError:  # ipykernel < 6.0 had no channel argument
        return kernel.get_parent() or {}
