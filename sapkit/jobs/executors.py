"""Job arrays on SLURM or on this machine through ``submitit`` (``--executor local|slurm``).

One *element* is one call ``fn(*args)`` (a sweep's parameter set, a subject to preprocess).
:func:`run_array` submits the elements of an array with `submitit <https://github.com/facebookincubator/submitit>`_:
``slurm`` makes one SLURM job array (``sbatch --array=0-(n-1)%parallelism``); ``local`` runs
each element as a submitit local job (a detached process), at most ``array_parallelism`` at a
time — the same pickled call, the same state files, only the launcher differs. Nothing here
schedules work itself: queueing, retries on timeout and log capture are submitit's and SLURM's.

Everything an array leaves lives in its folder (:meth:`sapkit.io.run_paths.RunDir.jobs`)::

    jobs/<array>/
      logs/                 submitit's folder: <job_id>_submission.sh, <job_id>_0_log.out/.err, pickles
      state/<name>.json     written by the element itself: running (job id, pid) → done | failed (error, seconds)
      submissions.csv       one row per submission: name, job_id, attempt, executor, submitted (UTC)
      states.csv            one row per element: the table :func:`element_states` returns

An element killed outright (``SIGKILL``, SLURM time limit, node failure) cannot write its state;
:func:`element_states` then reports ``failed`` once its job is gone. ``resume=True`` resubmits only
elements that are not ``done`` (or that the caller names in ``redo``) and whose job is no longer queued or running.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import json
import os
import signal
import socket
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Collection, Mapping, Sequence

import pandas as pd

from sapkit.errors import ConfigError
from sapkit.io.atomic import atomic_write_text
from sapkit.io.folders import JobsDir
from sapkit.jobs.gpus import GpuPool, machine_gpus
from sapkit.jobs.progress import progress_bar
from sapkit.jobs.threads import shared_cores

__all__ = ["EXECUTORS", "STATE_COLUMNS", "Resources", "run_array", "element_states"]

#: Launchers accepted by ``--executor`` (``local`` = submitit's local executor).
EXECUTORS = ("local", "slurm")
#: Columns of ``states.csv`` / :func:`element_states`.
STATE_COLUMNS = ["name", "state", "job_id", "attempts", "seconds", "error", "stdout", "stderr"]
_ALIVE_SLURM = {"PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "SUSPENDED", "RESIZING"}
_POLL_S = 1.0


@dataclass(frozen=True)
class Resources:
    """What one array element asks for; its defaults are the kit's one set of cluster defaults.

    The command-line options of every command that submits work (``sapkit sweep``, ``sapkit
    preprocess``, ``sapkit train --print-slurm``) take their defaults from these fields
    (:mod:`sapkit.cli._cluster`). ``mem_gb`` and ``time_min`` are sized for training — a sweep
    element runs the fine-tuning notebooks, a ``--print-slurm`` node runs a training — since a
    job that asks for too little is killed hours in; one scan of ``sapkit preprocess`` needs far
    less (``--mem-gb 16 --time-min 60`` shortens its wait in the queue).

    Attributes
    ----------
    partition, account, qos : str or None
        SLURM partition, account and quality of service (None = the cluster's default).
    gpus : int or None
        GPUs per element (SLURM ``--gpus-per-node``; None asks for none). Locally (:mod:`sapkit.jobs.gpus`):
        None shows every element all of the machine's GPUs, 0 none, ``k`` gives each element ``k`` of
        them, round robin (one each with ``--gpus 1``); the assignment is printed.
    cpus : int
        CPU cores per element (``--cpus-per-task``; ignored locally).
    mem_gb : float
        Memory per element (per node for ``--print-slurm``), GB (``--mem``; ignored locally).
    time_min : int
        Wall-clock limit per element (per job for ``--print-slurm``), minutes (``--time``; locally
        the job is stopped after it).
    array_parallelism : int
        Elements running at the same time (SLURM's ``%N`` of ``--array``; locally, processes).
    setup : tuple of str
        Shell lines run before each element (``module load …``, ``source .venv/bin/activate``).
    """

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    gpus: int | None = None
    cpus: int = 2
    mem_gb: float = 64.0
    time_min: int = 1440
    array_parallelism: int = 4
    setup: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "setup", tuple(str(s) for s in self.setup))
        if ((self.gpus is not None and self.gpus < 0) or self.cpus < 1 or self.mem_gb <= 0 or self.time_min < 1
                or self.array_parallelism < 1):
            raise ConfigError(f"resources need gpus >= 0, cpus >= 1, mem_gb > 0, time_min >= 1 and "
                              f"array_parallelism >= 1; got {self}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None, *, where: str = "resources") -> Resources:
        """Build from a YAML section such as ``{partition: gpu, gpus: 1, time_min: 240}``."""
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown}; use {sorted(known)}")
        try:
            return cls(**values)
        except TypeError as exc:
            raise ConfigError(f"{where}: {exc}; e.g. {{partition: gpu, gpus: 1, time_min: 240}}") from None
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None

    def submitit_parameters(self, name: str) -> dict[str, Any]:
        """Parameters for ``submitit.AutoExecutor.update_parameters`` (both launchers)."""
        params: dict[str, Any] = {"name": name, "timeout_min": int(self.time_min), "mem_gb": float(self.mem_gb),
                                  "cpus_per_task": int(self.cpus), "gpus_per_node": int(self.gpus or 0),
                                  "slurm_array_parallelism": int(self.array_parallelism)}
        for key in ("partition", "account", "qos"):
            if getattr(self, key):
                params[f"slurm_{key}"] = str(getattr(self, key))
        if self.setup:
            params["slurm_setup"] = list(self.setup)
            params["local_setup"] = list(self.setup)
        return params


# ---------------------------------------------------------------------------------------------- element side
def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _write_state(jd: JobsDir, name: str, **values: Any) -> None:
    atomic_write_text(jd.state(name), json.dumps({"name": name, **values}, indent=2, default=str))


def _run_element(folder: str, name: str, fn: Callable[..., Any], args: tuple[Any, ...], visible: str | None = None) -> Any:
    """What a job runs: record ``running``, call ``fn(*args)``, record ``done`` or ``failed``.

    ``visible``: the element's ``CUDA_VISIBLE_DEVICES`` (local arrays, :mod:`sapkit.jobs.gpus`), set
    before ``fn`` touches CUDA; None keeps the launcher's (SLURM's).
    """
    import submitit

    if visible is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = visible

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # inherited from a background shell: stay interruptible
        with contextlib.suppress(ValueError):  # not the main thread: leave it
            signal.signal(signal.SIGINT, signal.default_int_handler)
    jd = JobsDir(Path(folder))
    job_id = str(submitit.JobEnvironment().job_id)
    start, t0 = _now(), time.perf_counter()
    _write_state(jd, name, state="running", job_id=job_id, pid=os.getpid(), host=socket.gethostname(), started=start)
    try:
        result = fn(*args)
    except BaseException as exc:  # noqa: BLE001 — recorded, then re-raised for submitit's log
        _write_state(jd, name, state="failed", job_id=job_id, host=socket.gethostname(), started=start,
                     seconds=round(time.perf_counter() - t0, 1), error=f"{type(exc).__name__}: {exc}"[:500])
        raise
    _write_state(jd, name, state="done", job_id=job_id, host=socket.gethostname(), started=start,
                 finished=_now(), seconds=round(time.perf_counter() - t0, 1))
    return result


# ---------------------------------------------------------------------------------------------- submitter side
def _submissions(jd: JobsDir) -> pd.DataFrame:
    if not jd.submissions_csv.is_file():
        return pd.DataFrame(columns=["name", "job_id", "attempt", "executor", "submitted"])
    return pd.read_csv(jd.submissions_csv, dtype={"name": str, "job_id": str, "executor": str})


def _record_submission(jd: JobsDir, name: str, job_id: str, executor: str) -> None:
    previous = _submissions(jd)
    attempt = int((previous["name"] == name).sum()) + 1
    new = not jd.submissions_csv.is_file()
    jd.path.mkdir(parents=True, exist_ok=True)
    with open(jd.submissions_csv, "a", newline="") as fh:  # append-only log, one process submits
        writer = csv.writer(fh)
        if new:
            writer.writerow(["name", "job_id", "attempt", "executor", "submitted"])
        writer.writerow([name, job_id, attempt, executor, _now()])


def _job_alive(executor: str, job_id: str, logs: Path) -> bool:
    """Whether a submitted job is still queued or running (its process / its SLURM state)."""
    if executor == "local":
        try:
            os.kill(int(job_id), 0)
        except (ValueError, ProcessLookupError, PermissionError):
            return False
        try:  # a finished child of this process lingers as a zombie until polled
            pid, _ = os.waitpid(int(job_id), os.WNOHANG)
            return pid == 0
        except ChildProcessError:
            return True
    import submitit

    try:
        state = submitit.SlurmJob(folder=logs, job_id=job_id).state
    except Exception:  # noqa: BLE001 — sacct unreachable: assume it ended
        return False
    return str(state).split()[0].upper() in _ALIVE_SLURM


def element_states(folder: str | Path, names: Sequence[str] | None = None, *, check_jobs: bool = True) -> pd.DataFrame:
    """One row per element: its state, last job id, attempts, seconds, error and log files.

    ``state`` is ``never`` (not submitted), ``submitted`` (queued, not started), ``running``,
    ``done`` or ``failed``. A ``submitted``/``running`` element whose job no longer exists is
    reported ``failed`` ("killed") when ``check_jobs`` (it died without writing its state).

    Parameters
    ----------
    folder : str or Path
        The array's folder (:class:`sapkit.io.folders.JobsDir`).
    names : sequence of str, optional
        Elements to report (default: every element ever submitted).
    check_jobs : bool
        Ask the process table / SLURM whether pending or running jobs still exist.

    Returns
    -------
    DataFrame
        Columns :data:`STATE_COLUMNS`.
    """
    from submitit.core.utils import JobPaths

    jd = JobsDir(Path(folder))
    subs = _submissions(jd)
    names = list(dict.fromkeys(subs["name"])) if names is None else list(names)
    rows = []
    for name in names:
        mine = subs[subs["name"] == name]
        row: dict[str, Any] = {"name": name, "state": "never", "job_id": "", "attempts": len(mine), "seconds": float("nan"),
                               "error": "", "stdout": "", "stderr": ""}
        if len(mine):
            last = mine.iloc[-1]
            row["job_id"] = str(last["job_id"])
            paths = JobPaths(jd.logs, job_id=row["job_id"], task_id=0)
            row["stdout"], row["stderr"] = str(paths.stdout), str(paths.stderr)
            state = json.loads(jd.state(name).read_text()) if jd.state(name).is_file() else {}
            if str(state.get("job_id")) == row["job_id"]:
                row.update(state=state["state"], seconds=float(state.get("seconds", float("nan"))),
                           error=str(state.get("error", "")))
            else:
                row["state"] = "submitted"
            if row["state"] in ("submitted", "running") and check_jobs and \
                    not _job_alive(str(last["executor"]), row["job_id"], jd.logs):
                row.update(state="failed", error=f"killed: job {row['job_id']} ended while {row['state']}")
        rows.append(row)
    return pd.DataFrame(rows, columns=STATE_COLUMNS)


def _executor(kind: str, jd: JobsDir, resources: Resources, name: str) -> Any:
    import shutil

    import submitit

    if kind == "slurm" and not (shutil.which("sbatch") and shutil.which("srun")):
        raise ConfigError("executor 'slurm' needs the SLURM commands sbatch and srun on PATH; run on the "
                          "cluster's login node, or use --executor local on this machine")
    ex = submitit.AutoExecutor(folder=jd.logs, cluster=kind)
    ex.update_parameters(**resources.submitit_parameters(name))
    return ex


def run_array(
    elements: Mapping[str, tuple[Callable[..., Any], tuple[Any, ...]]],
    folder: str | Path,
    *,
    executor: str = "local",
    resources: Resources | None = None,
    resume: bool = False,
    wait: bool = True,
    name: str = "sapkit",
    progress: bool = True,
    redo: Collection[str] = (),
) -> pd.DataFrame:
    """Submit one job per element (a SLURM job array, or local submitit jobs) and collect states.

    Parameters
    ----------
    elements : mapping name → (fn, args)
        ``fn`` must be importable by the jobs (a module-level function; it is pickled by
        reference); names must be unique and file-safe (they name the state files).
    folder : str or Path
        The array's folder, e.g. ``RunDir(run_dir).jobs("sweep")``.
    executor : {"local", "slurm"}
        ``local`` runs the jobs on this machine (submitit's local executor), ``slurm`` submits
        with ``sbatch``.
    resources : Resources, optional
        Per-element resources and array parallelism.
    resume : bool
        Submit only elements that are not ``done`` and whose job is not queued or running
        (a first run submits everything either way).
    wait : bool
        Wait for the jobs (always for ``local``, whose throttling needs this process).
    name : str
        Job name shown by ``squeue``.
    progress : bool
        A progress bar over finished elements.
    redo : collection of str
        With ``resume``: elements submitted again although ``done`` (their result is stale).

    Returns
    -------
    DataFrame
        :func:`element_states` of ``elements`` (also written to ``states.csv``).

    Raises
    ------
    ConfigError
        Unknown executor or bad element names.
    """
    if executor not in EXECUTORS:
        raise ConfigError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    bad = [n for n in elements if not n or "/" in n or n != n.strip()]
    if bad:
        raise ConfigError(f"job-array element names must be non-empty and file-safe, got {bad}")
    resources = resources or Resources()
    jd = JobsDir(Path(folder))
    jd.logs.mkdir(parents=True, exist_ok=True)
    names = list(elements)
    todo = names
    if resume:
        states = element_states(jd.path, names)
        todo = [n for n, s in zip(states["name"], states["state"]) if s in ("never", "failed") or (s == "done" and n in redo)]
    ex = _executor(executor, jd, resources, name)
    call = [(str(jd.path), n, *elements[n]) for n in todo]
    if executor == "slurm":
        jobs = dict(zip(todo, ex.map_array(_run_element, *zip(*call)) if call else []))
        for n, job in jobs.items():
            _record_submission(jd, n, str(job.job_id), executor)
        if wait:
            _wait(jobs, progress=progress)
    else:  # local jobs inherit this process's environment: idle OpenMP threads sleep, not spin
        pool = GpuPool(machine_gpus(), resources.gpus)
        with shared_cores(min(resources.array_parallelism, len(call))):
            _run_throttled(ex, jd, dict(zip(todo, call)), parallelism=resources.array_parallelism, progress=progress,
                           pool=pool)
    table = element_states(jd.path, names, check_jobs=wait or executor == "local")
    atomic_write_text(jd.states_csv, table.to_csv(index=False))
    return table


def _bar(total: int, progress: bool) -> Any:
    return progress_bar(total=total, desc="jobs", unit="job", disable=not progress)


def _run_throttled(ex: Any, jd: JobsDir, calls: dict[str, tuple[Any, ...]], *, parallelism: int, progress: bool,
                   pool: GpuPool) -> None:
    """Local jobs, at most ``parallelism`` at once, in element order, each with the GPUs ``pool`` deals it."""
    pending, running = list(calls), {}
    bar = _bar(len(pending), progress)
    if pool.available and pending:
        print(f"local jobs: {len(pool.available)} GPU(s) on this machine ({', '.join(pool.available)}); "
              + ("every element sees all of them" if pool.per_element is None else
                 f"{pool.per_element} per element, round robin"), flush=True)
    while pending or running:
        while pending and len(running) < parallelism:
            n = pending.pop(0)
            visible = pool.take(n)
            job = ex.submit(_run_element, *calls[n], visible)
            _record_submission(jd, n, str(job.job_id), "local")
            if pool.available:
                print(f"  {n}: {pool.describe(visible)} (CUDA_VISIBLE_DEVICES={visible!r})", flush=True)
            running[n] = job
        for n in [n for n, job in running.items() if job.done()]:
            del running[n]
            pool.release(n)
            bar.update(1)
        time.sleep(_POLL_S if running else 0)
    bar.close()


def _wait(jobs: Mapping[str, Any], *, progress: bool) -> None:
    left = dict(jobs)
    bar = _bar(len(left), progress)
    while left:
        for n in [n for n, job in left.items() if job.done()]:
            del left[n]
            bar.update(1)
        time.sleep(_POLL_S * 30 if left else 0)
    bar.close()
