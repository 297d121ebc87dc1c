"""Papermill batch runs over a parameter grid: ``sapkit sweep GRID.yaml``.

A grid file::

    profile: smoke
    base_dir: runs/sweep              # one run folder per parameter set is made below it
    notebooks: [04_lesion_finetuning, 05_lesion_analysis]   # optional: a part of the series
    reuse: runs/smoke                 # optional: take data/, splits.json, skeleton/, ssl/ from here
    fixed: {lesion.epochs: 2}         # overrides shared by every set
    grid:                             # every combination is one run
      seed: [1, 2]
      lesion.label_fraction: [0.5, 1.0]
    resources: {partition: gpu, gpus: 1, time_min: 240}   # optional: per-set job resources (--executor)

Each run folder gets the series (or the chosen notebooks); afterwards the per-patient metrics
of every run are aggregated into ``base_dir/sweep_summary.csv`` and a label-efficiency plot
(median F2 and per-patient Dice vs fraction of labelled patients, per init). With
``executor="local"|"slurm"`` every parameter set is one element of a submitit job array
(:mod:`sapkit.jobs.executors`; states and logs in ``base_dir/jobs/sweep``).
"""

from __future__ import annotations

import itertools
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from sapkit.config import load_config
from sapkit.errors import ConfigError, SapkitError
from sapkit.io.atomic import atomic_write_text
from sapkit.io.run_paths import RunDir
from sapkit.io.yaml_io import load_yaml_file
from sapkit.io.folders import JobsDir
from sapkit.jobs.executors import Resources, run_array
from sapkit.jobs.progress import progress_bar
from sapkit.jobs.threads import shared_cores
from sapkit.pipeline.reproduce import reproduce
from sapkit.plotting.figures import label_efficiency_figure

__all__ = ["SweepGrid", "load_grid", "expand_grid", "run_name", "sweep", "summarize_sweep", "aggregate_runs"]


def _reused_folders(rd: RunDir) -> tuple[Path, ...]:
    """What a sweep run links from the ``reuse`` run: the data and the pretrained models."""
    return rd.data, rd.skeleton.path, rd.ssl.path


def _reused_files(rd: RunDir) -> tuple[Path, ...]:
    """What a sweep run copies from the ``reuse`` run: the folds and the dataset fingerprint."""
    return rd.splits_json, rd.fingerprint_json


@dataclass(frozen=True)
class SweepGrid:
    """A parsed grid file (paths resolved against the grid file's folder)."""

    profile: str
    base_dir: Path
    grid: dict[str, list[Any]]
    fixed: dict[str, Any] = field(default_factory=dict)
    notebooks: tuple[str, ...] | None = None
    reuse: Path | None = None
    resources: dict[str, Any] = field(default_factory=dict)


def load_grid(path: str | Path) -> SweepGrid:
    """Read and validate a grid YAML file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"grid file {path} does not exist; see `sapkit sweep --help` for its format")
    raw = load_yaml_file(path, what=f"grid file {path}") or {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"grid file {path} must be a YAML mapping with keys profile, base_dir, grid, fixed, "
                          f"notebooks, reuse; got a {type(raw).__name__}")
    unknown = set(raw) - {"profile", "base_dir", "grid", "fixed", "notebooks", "reuse", "resources"}
    if unknown:
        raise ConfigError(f"grid file {path}: unknown key(s) {sorted(unknown)}; use profile, base_dir, grid, fixed, "
                          "notebooks, reuse, resources")
    Resources.from_mapping(raw.get("resources"), where=f"grid file {path}: resources")
    grid = raw.get("grid") or {}
    if not isinstance(grid, Mapping) or not grid or not all(isinstance(v, list) and v for v in grid.values()):
        raise ConfigError(f"grid file {path}: 'grid' must map override keys to non-empty lists, e.g. seed: [1, 2]")
    for key in grid:  # fail now, naming the file, rather than when the first run starts
        try:
            load_config(str(raw.get("profile", "smoke")), {**(raw.get("fixed") or {}), key: grid[key][0]})
        except ConfigError as exc:
            raise ConfigError(f"grid file {path}: {exc}") from None
    root = path.parent
    reuse = raw.get("reuse")
    return SweepGrid(
        profile=str(raw.get("profile", "smoke")),
        base_dir=(root / str(raw.get("base_dir", "runs/sweep"))).resolve(),
        grid={str(k): list(v) for k, v in grid.items()},
        fixed=dict(raw.get("fixed") or {}),
        notebooks=tuple(raw["notebooks"]) if raw.get("notebooks") else None,
        reuse=(root / str(reuse)).resolve() if reuse else None,
        resources=dict(raw.get("resources") or {}),
    )


def expand_grid(grid: SweepGrid) -> list[dict[str, Any]]:
    """Every combination of the grid values (keys in file order), merged over ``fixed``.

    Examples
    --------
    >>> g = SweepGrid("smoke", Path("runs"), {"seed": [1, 2], "lesion.label_fraction": [0.5]})
    >>> expand_grid(g)
    [{'seed': 1, 'lesion.label_fraction': 0.5}, {'seed': 2, 'lesion.label_fraction': 0.5}]
    """
    keys = list(grid.grid)
    return [{**grid.fixed, **dict(zip(keys, values))} for values in itertools.product(*(grid.grid[k] for k in keys))]


def run_name(params: Mapping[str, Any], keys: list[str]) -> str:
    """Folder name of one parameter set, e.g. ``seed=1__lesion.label_fraction=0.5``."""
    return "__".join(f"{k}={params[k]}" for k in keys).replace("/", "-").replace(" ", "")


def _link_reused(source: Path, run_dir: Path) -> None:
    if not source.is_dir():
        raise ConfigError(f"reuse folder {source} does not exist; run `sapkit reproduce` there first or fix the grid file's reuse")
    run_dir.mkdir(parents=True, exist_ok=True)
    src_rd, dst_rd = RunDir(source), RunDir(run_dir)
    for src, dst in zip(_reused_folders(src_rd), _reused_folders(dst_rd)):
        if src.exists() and not dst.exists():
            os.symlink(src, dst, target_is_directory=True)
    for src, dst in zip(_reused_files(src_rd), _reused_files(dst_rd)):
        if src.is_file() and not dst.exists():
            shutil.copy2(src, dst)


def _run_one(args: tuple[str, str, dict[str, Any], tuple[str, ...] | None, bool, str | None, str | None]) -> str:
    profile, run_dir, overrides, notebooks, force, kernel, reuse = args
    if reuse:
        _link_reused(Path(reuse), Path(run_dir))
    reproduce(profile, run_dir, overrides, notebooks=notebooks, force=force, kernel=kernel, progress=False)
    return run_dir


def sweep(grid_path: str | Path, *, jobs: int = 1, force: bool = False, kernel: str | None = None,
          progress: bool = True, executor: str | None = None, resources: Resources | None = None, resume: bool = False,
          wait: bool = True) -> pd.DataFrame:
    """Run every parameter set of a grid, then aggregate; returns the summary table.

    Parameters
    ----------
    jobs : int
        Parameter sets run in parallel processes (1 = sequential); without ``executor``.
    executor : {"local", "slurm"}, optional
        One submitit job-array element per parameter set (:func:`sapkit.jobs.executors.run_array`).
    resources : sapkit.jobs.executors.Resources, optional
        Per-element resources (default: the grid file's ``resources`` section).
    resume : bool
        With ``executor``: resubmit only the parameter sets that failed or never ran.
    wait : bool
        With ``executor="slurm"``: False returns after submitting (an empty table); build the
        summary later with :func:`summarize_sweep`.

    Raises
    ------
    SapkitError
        With ``executor``, when some parameter sets failed (the summary of the others is written first).
    """
    grid = load_grid(grid_path)
    combos = expand_grid(grid)
    keys = list(grid.grid)
    runs = {run_name(p, keys): (p, grid.base_dir / run_name(p, keys)) for p in combos}
    tasks = [(grid.profile, str(d), p, grid.notebooks, force, kernel, str(grid.reuse) if grid.reuse else None)
             for p, d in runs.values()]
    if executor is not None:
        return _sweep_array(grid, runs, tasks, executor=executor, resources=resources, resume=resume, wait=wait,
                            progress=progress)
    if jobs > 1:
        with shared_cores(jobs), ProcessPoolExecutor(max_workers=jobs) as pool:
            list(progress_bar(pool.map(_run_one, tasks), total=len(tasks), desc="sweep", unit="run",
                              disable=not progress))
    else:
        for task in progress_bar(tasks, desc="sweep", unit="run", disable=not progress):
            _run_one(task)
    return _write_summary(grid, runs)


def _write_summary(grid: SweepGrid, runs: Mapping[str, tuple[Mapping[str, Any], Path]]) -> pd.DataFrame:
    """Aggregate ``runs`` into ``sweep_summary.csv`` and ``label_efficiency.html``."""
    summary = aggregate_runs(runs)
    grid.base_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(grid.base_dir / "sweep_summary.csv", summary.to_csv(index=False))
    fig = label_efficiency_figure(summary)
    atomic_write_text(grid.base_dir / "label_efficiency.html", fig.to_html(include_plotlyjs=True))
    return summary


def _sweep_array(grid: SweepGrid, runs: Mapping[str, tuple[Mapping[str, Any], Path]], tasks: list[tuple[Any, ...]], *,
                 executor: str, resources: Resources | None, resume: bool, wait: bool, progress: bool) -> pd.DataFrame:
    """:func:`sweep` through a submitit job array: one element per parameter set."""
    folder = RunDir(grid.base_dir).jobs("sweep")
    states = run_array({name: (_run_one, (task,)) for name, task in zip(runs, tasks)}, folder, executor=executor,
                       resources=resources or Resources.from_mapping(grid.resources), resume=resume, wait=wait,
                       name="sapkit-sweep", progress=progress)
    if not wait and executor == "slurm":
        return pd.DataFrame()
    done = set(states.loc[states["state"] == "done", "name"])
    summary = _write_summary(grid, {n: r for n, r in runs.items() if n in done}) if done else pd.DataFrame()
    if len(done) < len(runs):
        bad = states[states["state"] != "done"]
        raise SapkitError(
            f"{len(bad)} of {len(runs)} parameter sets did not finish ({', '.join(f'{n}: {s}' for n, s in zip(bad['name'], bad['state']))}); "
            f"see {JobsDir(folder).states_csv} and the logs it names, then rerun with --resume "
            f"(sweep_summary.csv holds the {len(done)} finished sets)")
    return summary


def summarize_sweep(grid_path: str | Path) -> pd.DataFrame:
    """Build ``sweep_summary.csv`` now from the parameter sets that finished (``sapkit sweep --aggregate``).

    Raises
    ------
    SapkitError
        No parameter set has finished yet.
    """
    grid = load_grid(grid_path)
    keys = list(grid.grid)
    runs = {run_name(p, keys): (p, grid.base_dir / run_name(p, keys)) for p in expand_grid(grid)}
    finished = {n: r for n, r in runs.items() if RunDir(r[1]).eval_table("patients").is_file()}
    if not finished:
        raise SapkitError(f"none of the {len(runs)} parameter sets of {grid_path} has finished yet "
                          f"(no eval/patients.csv below {grid.base_dir}); wait for the jobs or run the sweep")
    return _write_summary(grid, finished)


def _pick(frame: pd.DataFrame, names: tuple[str, ...]) -> str:
    for name in names:
        if name in frame.columns:
            return name
    raise SapkitError(f"patients.csv lacks any of the columns {names}; re-run notebook 05")


def aggregate_runs(runs: Mapping[str, tuple[Mapping[str, Any], Path]]) -> pd.DataFrame:
    """One row per (run, init): the run's parameters, n patients, median F2 and per-patient Dice, and
    ``flagged_scans``: scans with a predicted component over ≥ 2 lesions or above the size bound
    (docs/metrics.md §15) — where that is most scans, a high F2 says little."""
    rows = []
    for name, (params, run_dir) in runs.items():
        path = RunDir(run_dir).eval_table("patients")
        if not path.is_file():
            raise SapkitError(f"run {name} has no {path}; its notebook 05 did not finish")
        patients = pd.read_csv(path)
        f2, dice = _pick(patients, ("f2",)), _pick(patients, ("dice", "mean_lesion_dice", "dice_mean"))
        init_col = "init" if "init" in patients.columns else None
        groups = patients.groupby(init_col) if init_col else [("all", patients)]
        for init, part in groups:
            flagged = sum((part[c].fillna(0) > 0) for c in ("n_merging", "n_oversized") if c in part.columns)
            rows.append({"run": name, **params, "init": init, "n_patients": len(part),
                         "median_f2": float(part[f2].median()), "median_dice": float(part[dice].median()),
                         "flagged_scans": int((flagged > 0).sum()) if len(part) and not isinstance(flagged, int) else 0})
    return pd.DataFrame(rows)

