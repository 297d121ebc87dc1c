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

Each run folder gets the series (or the chosen notebooks); afterwards the per-patient metrics
of every run are aggregated into ``base_dir/sweep_summary.csv`` and a label-efficiency plot
(median F2 and per-patient Dice vs fraction of labelled patients, per init).
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
import yaml

from sapkit.errors import ConfigError, SapkitError
from sapkit.io.nifti import atomic_write_text

__all__ = ["SweepGrid", "load_grid", "expand_grid", "run_name", "sweep", "aggregate_runs", "label_efficiency_figure"]

_REUSED = ("data", "skeleton", "ssl")
_REUSED_FILES = ("splits.json", "fingerprint.json")


@dataclass(frozen=True)
class SweepGrid:
    """A parsed grid file (paths resolved against the grid file's folder)."""

    profile: str
    base_dir: Path
    grid: dict[str, list[Any]]
    fixed: dict[str, Any] = field(default_factory=dict)
    notebooks: tuple[str, ...] | None = None
    reuse: Path | None = None


def load_grid(path: str | Path) -> SweepGrid:
    """Read and validate a grid YAML file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"grid file {path} does not exist; see `sapkit sweep --help` for its format")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"grid file {path} is not valid YAML ({str(exc).splitlines()[0]}); fix its syntax, "
                          "see `sapkit sweep --help` for its format") from None
    if not isinstance(raw, Mapping):
        raise ConfigError(f"grid file {path} must be a YAML mapping with keys profile, base_dir, grid, fixed, "
                          f"notebooks, reuse; got a {type(raw).__name__}")
    unknown = set(raw) - {"profile", "base_dir", "grid", "fixed", "notebooks", "reuse"}
    if unknown:
        raise ConfigError(f"grid file {path}: unknown key(s) {sorted(unknown)}; use profile, base_dir, grid, fixed, notebooks, reuse")
    grid = raw.get("grid") or {}
    if not isinstance(grid, Mapping) or not grid or not all(isinstance(v, list) and v for v in grid.values()):
        raise ConfigError(f"grid file {path}: 'grid' must map override keys to non-empty lists, e.g. seed: [1, 2]")
    from sapkit.config import load_config

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
        raise SapkitError(f"reuse folder {source} does not exist; run `sapkit reproduce` there first")
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in _REUSED:
        src, dst = source / name, run_dir / name
        if src.exists() and not dst.exists():
            os.symlink(src, dst, target_is_directory=True)
    for name in _REUSED_FILES:
        if (source / name).is_file() and not (run_dir / name).exists():
            shutil.copy2(source / name, run_dir / name)


def _run_one(args: tuple[str, str, dict[str, Any], tuple[str, ...] | None, bool, str | None, str | None]) -> str:
    from sapkit.pipeline.reproduce import reproduce

    profile, run_dir, overrides, notebooks, force, kernel, reuse = args
    if reuse:
        _link_reused(Path(reuse), Path(run_dir))
    reproduce(profile, run_dir, overrides, notebooks=notebooks, force=force, kernel=kernel, progress=False)
    return run_dir


def sweep(grid_path: str | Path, *, jobs: int = 1, force: bool = False, kernel: str | None = None,
          progress: bool = True) -> pd.DataFrame:
    """Run every parameter set of a grid, then aggregate; returns the summary table.

    Parameters
    ----------
    jobs : int
        Parameter sets run in parallel processes (1 = sequential).
    """
    grid = load_grid(grid_path)
    combos = expand_grid(grid)
    keys = list(grid.grid)
    runs = {run_name(p, keys): (p, grid.base_dir / run_name(p, keys)) for p in combos}
    tasks = [(grid.profile, str(d), p, grid.notebooks, force, kernel, str(grid.reuse) if grid.reuse else None)
             for p, d in runs.values()]
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            done = pool.map(_run_one, tasks)
            if progress:
                from tqdm.auto import tqdm

                done = tqdm(done, total=len(tasks), desc="sweep", unit="run")
            list(done)
    else:
        iterator: Any = tasks
        if progress:
            from tqdm.auto import tqdm

            iterator = tqdm(tasks, desc="sweep", unit="run")
        for task in iterator:
            _run_one(task)
    summary = aggregate_runs({name: (params, d) for name, (params, d) in runs.items()})
    grid.base_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(grid.base_dir / "sweep_summary.csv", summary.to_csv(index=False))
    fig = label_efficiency_figure(summary)
    atomic_write_text(grid.base_dir / "label_efficiency.html", fig.to_html(include_plotlyjs=True))
    return summary


def _pick(frame: pd.DataFrame, names: tuple[str, ...]) -> str:
    for name in names:
        if name in frame.columns:
            return name
    raise SapkitError(f"patients.csv lacks any of the columns {names}; re-run notebook 05")


def aggregate_runs(runs: Mapping[str, tuple[Mapping[str, Any], Path]]) -> pd.DataFrame:
    """One row per (run, init): the run's parameters, n patients, median F2 and per-patient Dice."""
    rows = []
    for name, (params, run_dir) in runs.items():
        path = Path(run_dir) / "eval" / "patients.csv"
        if not path.is_file():
            raise SapkitError(f"run {name} has no {path}; its notebook 05 did not finish")
        patients = pd.read_csv(path)
        f2, dice = _pick(patients, ("f2",)), _pick(patients, ("dice", "mean_lesion_dice", "dice_mean"))
        init_col = "init" if "init" in patients.columns else None
        groups = patients.groupby(init_col) if init_col else [("all", patients)]
        for init, part in groups:
            rows.append({"run": name, **params, "init": init, "n_patients": len(part),
                         "median_f2": float(part[f2].median()), "median_dice": float(part[dice].median())})
    return pd.DataFrame(rows)


def label_efficiency_figure(summary: pd.DataFrame):
    """Median F2 and per-patient Dice vs ``lesion.label_fraction`` per init (mean over other grid axes)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    x = "lesion.label_fraction" if "lesion.label_fraction" in summary.columns else None
    fig = make_subplots(rows=1, cols=2, subplot_titles=("median patient F2", "median per-patient Dice"))
    for init, part in summary.groupby("init"):
        means = part.groupby(x)[["median_f2", "median_dice"]].mean().reset_index() if x else part
        xs = means[x] if x else list(range(len(means)))
        for col, metric in ((1, "median_f2"), (2, "median_dice")):
            fig.add_trace(go.Scatter(x=xs, y=means[metric], mode="lines+markers", name=str(init),
                                     legendgroup=str(init), showlegend=col == 1), row=1, col=col)
    fig.update_xaxes(title_text="fraction of labelled training patients" if x else "run")
    fig.update_layout(title="Label efficiency", height=380)
    return fig
