"""Run the notebook series headless with papermill: ``sapkit reproduce``.

Each notebook 00→05 is executed with the parameters ``profile``, ``run_dir`` and ``overrides``
into ``run_dir/notebooks/``; when the profile names raw input (``raw.input`` or
``raw.synthetic``), notebook 00a preprocesses it into ``run_dir/data`` first and every notebook
also gets ``data_root`` pointing there. A notebook whose executed copy finished with the same parameters
is skipped unless ``force``; the first failure stops the series with an error naming the
notebook and the cell. The run ends by writing ``run_dir/report.html``.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from sapkit.config import Config, load_config
from sapkit.errors import OutputPathError, SapkitError
from sapkit.io.atomic import atomic_write_text
from sapkit.io.run_lock import RunLock
from sapkit.io.run_paths import RunDir, default_run_dir
from sapkit.io.run_record import prepare_run_dir
from sapkit.pipeline.html_report import build_report
from sapkit.pipeline.progress import RunMonitor, check_series_plan, format_seconds, planned_models

__all__ = [
    "NOTEBOOKS", "RAW_NOTEBOOK", "series_notebooks", "NotebookResult", "notebooks_dir", "check_run_dir", "kernel_name", "resume_command", "run_notebook", "reproduce",
]

NOTEBOOKS = (
    "00_data",
    "01_skeleton_labelling",
    "02_skeleton_pretraining",
    "03_ssl_pretraining",
    "04_lesion_finetuning",
    "05_lesion_analysis",
)
#: Runs first when the profile names raw input (``raw.input`` or ``raw.synthetic``): raw stations →
#: ``run_dir/data``, which notebook 00 then loads instead of generating the phantom.
RAW_NOTEBOOK = "00a_preprocessing"


def series_notebooks(config: Config) -> tuple[str, ...]:
    """The series for ``config``: :data:`NOTEBOOKS`, preceded by :data:`RAW_NOTEBOOK` for raw input."""
    raw = getattr(config, "raw", None)
    return ((RAW_NOTEBOOK,) if raw is not None and (raw.input or raw.synthetic) else ()) + NOTEBOOKS


@dataclass(frozen=True)
class NotebookResult:
    """Outcome of one notebook: ``status`` is ``ran`` or ``skipped``; ``seconds`` wall time."""

    name: str
    status: str
    seconds: float
    output: Path


def notebooks_dir() -> Path:
    """The repository's ``notebooks/`` folder (next to the installed ``sapkit`` package)."""
    folder = Path(__file__).resolve().parents[2] / "notebooks"
    if not folder.is_dir():
        raise SapkitError(
            f"notebooks folder {folder} not found; install sapkit in editable mode from a clone (make install)"
        )
    return folder


def check_run_dir(run_dir: str | Path, source_dir: Path | None = None) -> None:
    """Refuse a run folder that would put its executed notebooks over the kit's own (``source_dir``).

    A run writes ``<run_dir>/notebooks/<name>.ipynb``; with ``run_dir`` the repository root that is
    the series itself, and a run folder inside ``notebooks/`` mixes outputs into the sources.

    Raises
    ------
    OutputPathError
        Naming the run folder, the notebooks folder and the fix.
    """
    source = (source_dir or notebooks_dir()).resolve()
    run = Path(run_dir).expanduser().resolve()
    executed = RunDir(run).notebooks_dir.resolve()
    if run == source or source in run.parents:
        raise OutputPathError(f"run folder {run} lies inside the kit's notebooks folder {source}; choose a run "
                              "folder outside it, e.g. runs/<profile> (sapkit never writes into its inputs)")
    if executed == source or source in executed.parents:
        raise OutputPathError(f"run folder {run} would write its executed notebooks over the kit's notebooks in "
                              f"{source}; choose a run folder of its own, e.g. runs/<profile> (sapkit never "
                              "writes over its inputs)")


def kernel_name() -> str:
    """``sapkit`` when that Jupyter kernel is registered (make install), else ``python3``."""
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager().find_kernel_specs()
    return "sapkit" if "sapkit" in specs else "python3"


def _params_digest(parameters: Mapping[str, Any], source: Path) -> str:
    blob = json.dumps(parameters, sort_keys=True, default=str) + hashlib.sha256(source.read_bytes()).hexdigest()
    return hashlib.sha256(blob.encode()).hexdigest()


def _failed_cell(output: Path, *, running: bool = False) -> str:
    """Describe the first cell with an error output (or, ``running``, the cell left running) of a notebook."""
    import nbformat

    try:
        nb = nbformat.read(str(output), as_version=4)
    except (OSError, ValueError):
        return "unknown cell"
    code_index, last_started = 0, "unknown cell"
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        code_index += 1
        first = (cell.source.strip().splitlines() or [""])[0][:80]
        if running:  # the kernel died in the last cell that started
            if cell.get("metadata", {}).get("papermill", {}).get("start_time"):
                last_started = f"code cell {code_index} (`{first}`)"
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return f"code cell {code_index} (`{first}`): {out.get('ename')}: {out.get('evalue')}"
    return last_started


def resume_command(parameters: Mapping[str, Any]) -> str:
    """The ``sapkit reproduce`` command line that continues a run from its first unfinished notebook."""
    import shlex

    words = ["sapkit", "reproduce", "--profile", str(parameters.get("profile", "smoke")),
             "--run-dir", str(parameters.get("run_dir", "."))]
    for key, value in dict(parameters.get("overrides") or {}).items():
        words += ["-p", f"{key}={json.dumps(value) if not isinstance(value, str) else value}"]
    return " ".join(shlex.quote(w) for w in words)


def run_notebook(
    name: str, run_dir: Path, parameters: Mapping[str, Any], *, force: bool = False,
    kernel: str | None = None, source_dir: Path | None = None, cwd: Path | None = None,
    config: Config | None = None, progress: bool = False,
) -> NotebookResult:
    """Execute one notebook of the series into ``run_dir/notebooks/<name>.ipynb``.

    Raises
    ------
    SapkitError
        The notebook failed; the message names the notebook, the cell and the error.

    Notes
    -----
    With ``progress`` a :class:`sapkit.pipeline.progress.RunMonitor` prints one line per epoch
    of any model the notebook trains (and a heartbeat at least every minute) to stderr.
    """
    import contextlib

    import papermill as pm

    from nbclient.exceptions import DeadKernelError

    source = (source_dir or notebooks_dir()) / f"{name}.ipynb"
    if not source.is_file():
        raise SapkitError(f"notebook {source} does not exist; choose from {', '.join(NOTEBOOKS)}")
    check_run_dir(run_dir, source.parent)
    rd = RunDir(run_dir)
    rd.notebooks_dir.mkdir(parents=True, exist_ok=True)
    output = rd.notebook(name)
    marker = rd.notebook_marker(name)
    digest = _params_digest(parameters, source)
    if not force and output.is_file() and marker.is_file():
        if json.loads(marker.read_text()).get("digest") == digest:
            return NotebookResult(name, "skipped", 0.0, output)
    marker.unlink(missing_ok=True)
    start = time.perf_counter()
    monitor = (RunMonitor(run_dir, name, config=config, n_models=planned_models(run_dir, config, name))
               if progress else contextlib.nullcontext())
    try:
        with monitor:
            pm.execute_notebook(
                str(source), str(output), parameters=dict(parameters), kernel_name=kernel or kernel_name(),
                progress_bar=False, cwd=str(cwd or Path.cwd()), log_output=False,
                # the kernel's "running over TCP without encryption" warning is noise on a local run
                extra_arguments=["--IPKernelApp.log_level=ERROR"],
            )
    except pm.PapermillExecutionError:
        raise SapkitError(
            f"notebook {name} failed in {_failed_cell(output)}; the executed copy with the traceback is {output}; "
            f"after fixing the cause, resume with `{resume_command(parameters)}`"
        ) from None
    except DeadKernelError:
        raise SapkitError(
            f"notebook {name} failed in {_failed_cell(output, running=True)}: the kernel died — out of memory? "
            f"(lower the profile's batch_size/roi or free memory); the executed copy is {output}; "
            f"resume with `{resume_command(parameters)}`"
        ) from None
    seconds = time.perf_counter() - start
    atomic_write_text(marker, json.dumps({"digest": digest, "seconds": round(seconds, 1), "parameters": dict(parameters)},
                                         default=str, indent=2))
    return NotebookResult(name, "ran", seconds, output)


def reproduce(
    profile: str = "smoke", run_dir: str | Path | None = None, overrides: Mapping[str, Any] | None = None, *,
    notebooks: Sequence[str] | None = None, force: bool = False, kernel: str | None = None,
    progress: bool = True, extra_parameters: Mapping[str, Any] | None = None,
    on_result: Callable[[NotebookResult], None] | None = None,
) -> list[NotebookResult]:
    """Execute the notebook series (or ``notebooks``) in order and write ``report.html``.

    Parameters
    ----------
    profile : str
        ``smoke``, ``demo`` or ``paper``.
    run_dir : path, optional
        Run folder (default ``runs/<profile>``); made absolute so notebooks find it from any cwd.
    overrides : mapping, optional
        Config overrides passed to every notebook (``{"lesion.epochs": 2}``).
    notebooks : sequence of str, optional
        Subset of :data:`NOTEBOOKS` (names without ``.ipynb``), run in series order.
    force : bool
        Re-run notebooks whose outputs are complete.

    Returns
    -------
    list of NotebookResult
    """
    config = load_config(profile, overrides)  # fail fast on a bad profile/override, before any notebook starts
    if config.pin_isa:  # the notebook kernels start with the instruction sets pinned (docs/reproducibility.md)
        from sapkit.io.machine import pin_isa

        pin_isa()
    run_dir = Path(run_dir or default_run_dir(str(profile))).resolve()
    check_run_dir(run_dir)  # before anything is written: the run's record would land at the repository root
    series = series_notebooks(config)
    wanted = list(series if notebooks is None else notebooks)
    unknown = [n for n in wanted if n not in series]
    if unknown:
        raise SapkitError(f"unknown notebook(s) {unknown}; choose from {', '.join(NOTEBOOKS)}"
                          + ("" if RAW_NOTEBOOK in series else f" ({RAW_NOTEBOOK} runs when the profile names raw input: "
                             "raw.input or raw.synthetic=true)"))
    wanted = [n for n in series if n in wanted]
    check_series_plan(config, wanted)  # e.g. a fold list without the tuning fold, before any GPU hour
    parameters = {"profile": str(profile), "run_dir": str(run_dir), "overrides": dict(overrides or {})}
    if RAW_NOTEBOOK in series:  # notebook 00 loads what 00a preprocessed instead of generating the phantom
        parameters["data_root"] = str(RunDir(run_dir).data)
    parameters.update(extra_parameters or {})
    results = []
    # one writer per run folder; the notebooks (child processes) inherit the lock's token
    with RunLock(run_dir, f"sapkit reproduce --profile {profile} --run-dir {run_dir}"):
        prepare_run_dir(run_dir, config)  # the run's record, once: the notebooks find it and leave it as it is
        for k, name in enumerate(wanted, 1):
            if progress:  # plain lines: the per-epoch lines of RunMonitor go between them
                print(f"[sapkit] {name} ({k}/{len(wanted)}) starting", file=sys.stderr, flush=True)
            result = run_notebook(name, run_dir, parameters, force=force, kernel=kernel, config=config,
                                  progress=progress)
            if progress:
                print(f"[sapkit] {name} ({k}/{len(wanted)}) " + (f"ran in {format_seconds(result.seconds)}"
                      if result.status == "ran" else "skipped (finished earlier)"), file=sys.stderr, flush=True)
            results.append(result)
            if on_result is not None:
                on_result(result)
        build_report(run_dir)
    return results
