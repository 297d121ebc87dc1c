"""Run the notebook series headless with papermill: ``sapkit reproduce``.

Each notebook 00→05 is executed with the parameters ``profile``, ``run_dir`` and ``overrides``
into ``run_dir/notebooks/``. A notebook whose executed copy finished with the same parameters
is skipped unless ``force``; the first failure stops the series with an error naming the
notebook and the cell. The run ends by writing ``run_dir/report.html``.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from sapkit.errors import SapkitError
from sapkit.io.atomic import atomic_write_text
from sapkit.io.run_paths import RunDir, default_run_dir

__all__ = ["NOTEBOOKS", "NotebookResult", "notebooks_dir", "kernel_name", "run_notebook", "reproduce"]

NOTEBOOKS = (
    "00_data",
    "01_skeleton_labelling",
    "02_skeleton_pretraining",
    "03_ssl_pretraining",
    "04_lesion_finetuning",
    "05_lesion_analysis",
)


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


def kernel_name() -> str:
    """``sapkit`` when that Jupyter kernel is registered (make install), else ``python3``."""
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager().find_kernel_specs()
    return "sapkit" if "sapkit" in specs else "python3"


def _params_digest(parameters: Mapping[str, Any], source: Path) -> str:
    blob = json.dumps(parameters, sort_keys=True, default=str) + hashlib.sha256(source.read_bytes()).hexdigest()
    return hashlib.sha256(blob.encode()).hexdigest()


def _failed_cell(output: Path) -> str:
    """Describe the first cell with an error output in an executed notebook."""
    import nbformat

    try:
        nb = nbformat.read(str(output), as_version=4)
    except (OSError, ValueError):
        return "unknown cell"
    code_index = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        code_index += 1
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                first = (cell.source.strip().splitlines() or [""])[0][:80]
                return f"code cell {code_index} (`{first}`): {out.get('ename')}: {out.get('evalue')}"
    return "unknown cell"


def run_notebook(
    name: str, run_dir: Path, parameters: Mapping[str, Any], *, force: bool = False,
    kernel: str | None = None, source_dir: Path | None = None, cwd: Path | None = None,
) -> NotebookResult:
    """Execute one notebook of the series into ``run_dir/notebooks/<name>.ipynb``.

    Raises
    ------
    SapkitError
        The notebook failed; the message names the notebook, the cell and the error.
    """
    import papermill as pm

    source = (source_dir or notebooks_dir()) / f"{name}.ipynb"
    if not source.is_file():
        raise SapkitError(f"notebook {source} does not exist; choose from {', '.join(NOTEBOOKS)}")
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
    try:
        pm.execute_notebook(
            str(source), str(output), parameters=dict(parameters), kernel_name=kernel or kernel_name(),
            progress_bar=False, cwd=str(cwd or Path.cwd()), log_output=False,
        )
    except pm.PapermillExecutionError as exc:
        raise SapkitError(
            f"notebook {name} failed in {_failed_cell(output)}; the executed copy with the traceback is {output}"
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
    from sapkit.config import load_config
    from sapkit.pipeline.html_report import build_report

    load_config(profile, overrides)  # fail fast on a bad profile/override, before any notebook starts
    run_dir = Path(run_dir or default_run_dir(str(profile))).resolve()
    wanted = list(NOTEBOOKS if notebooks is None else notebooks)
    unknown = [n for n in wanted if n not in NOTEBOOKS]
    if unknown:
        raise SapkitError(f"unknown notebook(s) {unknown}; choose from {', '.join(NOTEBOOKS)}")
    wanted = [n for n in NOTEBOOKS if n in wanted]
    parameters = {"profile": str(profile), "run_dir": str(run_dir), "overrides": dict(overrides or {})}
    parameters.update(extra_parameters or {})
    results = []
    iterator: Any = wanted
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(wanted, desc=f"reproduce {profile}", unit="notebook")
    for name in iterator:
        if progress:
            iterator.set_postfix_str(name)
        result = run_notebook(name, run_dir, parameters, force=force, kernel=kernel)
        results.append(result)
        if on_result is not None:
            on_result(result)
    build_report(run_dir)
    return results
