"""Progress a person can trust: terminal lines from ``sapkit reproduce``, and the series plan checked first.

- :class:`RunMonitor` watches a run folder while a notebook executes and prints one line per
  finished epoch of any model (``log.csv`` rows, see :class:`sapkit.io.run_paths.ModelDir`):
  which notebook, which model, epoch k/n, seconds per epoch and an ETA measured from those
  seconds; between epochs it prints a heartbeat at least every ``heartbeat_s`` seconds.
- :func:`check_series_plan` refuses, before any training, a plan notebook 05 cannot finish, and
  :func:`planned_models` counts the models notebook 04 trains (for the notebook ETA).

The progress *bars* have their own home below every stage, :mod:`sapkit.jobs.progress`; the
notebooks import :func:`~sapkit.jobs.progress.use_text_progress` from here, which re-exports it.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Callable, Sequence, TextIO

from sapkit.config import Config
from sapkit.data.splits import load_splits, resolve_folds
from sapkit.errors import ConfigError
from sapkit.io.run_paths import RunDir
from sapkit.jobs.progress import use_text_progress

__all__ = ["RunMonitor", "check_series_plan", "model_epochs", "planned_models", "format_seconds", "use_text_progress"]


def format_seconds(seconds: float) -> str:
    """``75`` → ``"1m15s"``, ``3700`` → ``"1h01m"``, ``9`` → ``"9s"``.

    Examples
    --------
    >>> format_seconds(9.4), format_seconds(75), format_seconds(3700)
    ('9s', '1m15s', '1h01m')
    """
    s = int(round(max(seconds, 0.0)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def model_epochs(config: Config, model: str) -> int | None:
    """Planned epochs of a model folder name (``skeleton``, ``ssl``, ``lesion/<init>/fold_<k>``); None if unknown."""
    section = model.split("/")[0]
    part = getattr(config, section, None)
    return getattr(part, "epochs", None)


def _read_log(path: Path) -> tuple[int, float] | None:
    """(last epoch, mean seconds per trained epoch) of a ``log.csv``; None when unreadable."""
    try:
        lines = path.read_text().strip().splitlines()
    except OSError:
        return None
    if len(lines) < 2:
        return None
    header = lines[0].split(",")
    if "epoch" not in header or "seconds" not in header:
        return None
    e, s = header.index("epoch"), header.index("seconds")
    epoch, seconds = 0, []
    for line in lines[1:]:
        cells = line.split(",")
        try:
            epoch = int(float(cells[e]))
            value = float(cells[s])
        except (IndexError, ValueError):
            continue
        if epoch > 0 and value > 0:
            seconds.append(value)
    return epoch, (sum(seconds) / len(seconds) if seconds else 0.0)


class RunMonitor:
    """Print progress lines for one notebook while it runs (a daemon thread polling ``log.csv`` files).

    Parameters
    ----------
    run_dir : path
        The run folder the notebook writes.
    notebook : str
        Notebook name shown on every line.
    config : Config, optional
        Gives the planned epochs per model (``<section>.epochs``); without it the line shows k only.
    n_models : int, optional
        Models this notebook will train (e.g. inits × folds in notebook 04), for the notebook ETA.
    heartbeat_s : float
        Longest silence: a "still running" line is printed after this many seconds without news.
    poll_s : float
        Seconds between looks at the run folder.
    stream : file, optional
        Where lines go (default ``sys.stderr``).
    clock : callable, optional
        Monotonic clock in seconds (tests).

    Examples
    --------
    >>> import io, tempfile
    >>> out = io.StringIO()
    >>> with tempfile.TemporaryDirectory() as d, RunMonitor(d, "04_lesion_finetuning", stream=out, poll_s=0.05):
    ...     md = RunDir(d).lesion("sap", 0)
    ...     md.path.mkdir(parents=True)
    ...     _ = md.log_csv.write_text("epoch,loss,seconds\\n0,,0\\n1,0.5,2.0\\n")
    ...     time.sleep(0.3)
    >>> "04_lesion_finetuning · lesion/sap/fold_0 · epoch 1" in out.getvalue()
    True
    """

    def __init__(self, run_dir: str | Path, notebook: str, *, config: Config | None = None, n_models: int | None = None,
                 heartbeat_s: float = 50.0, poll_s: float = 2.0, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.rd = RunDir(run_dir)
        self.notebook, self.config, self.n_models = notebook, config, n_models
        self.heartbeat_s, self.poll_s = heartbeat_s, poll_s
        self.stream = stream or sys.stderr
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: dict[Path, tuple[float, int]] = {}
        self.lines: list[str] = []

    def _logs(self) -> list[Path]:
        """Every model's ``log.csv`` now; folders that come and go meanwhile (hidden staging folders of
        atomic writes) are skipped, never an error."""
        found = [p for p in (self.rd.skeleton.path / "log.csv", self.rd.ssl.path / "log.csv") if p.is_file()]
        try:
            inits = sorted(d for d in self.rd.lesion_dir.iterdir() if d.is_dir() and not d.name.startswith("."))
        except OSError:
            return found
        for init in inits:
            try:
                found += sorted(p for p in init.glob("fold_*/log.csv") if p.is_file())
            except OSError:
                continue
        return found

    def _mtime(self, path: Path) -> float | None:
        try:
            return path.stat().st_mtime
        except OSError:
            return None

    def _emit(self, text: str) -> None:
        self.lines.append(text)
        print(text, file=self.stream, flush=True)

    def _baseline(self) -> None:
        for path in self._logs():
            self._seen[path] = (self._mtime(path), (_read_log(path) or (0, 0.0))[0])

    def poll(self) -> bool:
        """Look once for new epochs; print a line per model that advanced; return whether any did."""
        news = False
        for path in self._logs():
            mtime = self._mtime(path)
            if mtime is None or self._seen.get(path, (None, 0))[0] == mtime:
                continue
            info = _read_log(path)
            if info is None:
                continue
            epoch, per_epoch = info
            before = self._seen.get(path, (None, 0))[1]
            self._seen[path] = (mtime, epoch)
            if epoch <= before:
                continue
            model = path.parent.relative_to(self.rd.path).as_posix()
            total = model_epochs(self.config, model) if self.config is not None else None
            text = f"[sapkit] {self.notebook} · {model} · epoch {epoch}" + (f"/{total}" if total else "")
            if per_epoch > 0:
                text += f" · {per_epoch:.1f} s/epoch"
                if total:
                    text += f" · model ETA {format_seconds(per_epoch * max(total - epoch, 0))}"
                    if self.n_models:
                        done = sum(1 for p in self._seen if p.parent.parent.parent == self.rd.lesion_dir
                                   and self._seen[p][1] >= total)
                        left = max(self.n_models - done - (epoch < total), 0)
                        text += f" · notebook ETA {format_seconds(per_epoch * (max(total - epoch, 0) + left * total))}"
            self._emit(text)
            news = True
        return news

    def _safe_poll(self) -> bool:
        try:
            return self.poll()
        except Exception:  # noqa: BLE001 - the monitor must never stop the heartbeat or print a traceback
            return False

    def _run(self) -> None:
        start = last = self._clock()
        while not self._stop.wait(self.poll_s):
            if self._safe_poll():
                last = self._clock()
            elif self._clock() - last >= self.heartbeat_s:
                last = self._clock()
                self._emit(f"[sapkit] {self.notebook} · still running · {format_seconds(last - start)} elapsed")

    def __enter__(self) -> "RunMonitor":
        self._baseline()
        self._thread = threading.Thread(target=self._run, name=f"sapkit-monitor-{self.notebook}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._safe_poll()


def planned_models(run_dir: str | Path, config: Config, notebook: str) -> int | None:
    """Models notebook 04 trains (inits × folds incl. ``tune``) once ``splits.json`` exists; else None."""
    rd = RunDir(run_dir)
    if not notebook.startswith("04") or not rd.splits_json.is_file():
        return None
    return len(config.lesion.inits) * len(resolve_folds(load_splits(rd.path), config.lesion.folds))


def check_series_plan(config: Config, notebooks: Sequence[str]) -> None:
    """Refuse, before any training, a plan notebook 05 cannot finish.

    Notebook 05 tunes the threshold on the predictions of the ``tune`` models; a ``lesion.folds``
    list without ``"tune"`` (and not ``["all"]``) would only fail there, after every GPU hour.

    Raises
    ------
    ConfigError
        Notebook 05 is planned and ``lesion.folds`` lacks ``"tune"``.

    Examples
    --------
    >>> from sapkit.config import load_config
    >>> check_series_plan(load_config("smoke", {"lesion.folds": [0, "tune"]}), ["04_lesion_finetuning", "05_lesion_analysis"])
    >>> check_series_plan(load_config("smoke", {"lesion.folds": [0, 1]}), ["04_lesion_finetuning"])
    """
    folds = [str(f) for f in config.lesion.folds]
    if any(str(n).startswith("05") for n in notebooks) and folds != ["all"] and "tune" not in folds:
        raise ConfigError(
            f"lesion.folds={folds} has no 'tune' fold, but notebook 05 tunes the threshold on its predictions; "
            f"add it (-p lesion.folds=[{','.join(folds)},tune]) or run only up to notebook 04"
        )
