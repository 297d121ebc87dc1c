"""The suite's expensive shared runs, built in one child process while the rest of the suite runs.

    python tests/smoke_runs.py FOLDER STAGE [STAGE ...]

Stages, in this order:

* ``series``: ``sapkit reproduce --profile smoke`` into ``FOLDER/smoke`` (the ``smoke_series`` fixture);
* ``sweep``: a two-element sweep over that series through the local executor (``sapkit sweep
  --executor local``), then its first element again with ``--jobs 1`` (the ``smoke_sweep`` fixture
  of tests/jobs/test_executors.py), below ``FOLDER/sweep``.

A finished stage writes ``FOLDER/<stage>.done``; a failing one prints its traceback and the process
exits 1 (tests/conftest.py sends the output to ``FOLDER/smoke_runs.log`` and quotes it). conftest starts
this at the end of collection, only with the stages that a test which will run needs, and moves the
modules that use them to the end of the session.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

STAGES = ("series", "sweep")


def series_dir(folder: Path) -> Path:
    return folder / "smoke"


def sweep_grid(folder: Path, name: str, label_fractions: list[float]) -> Path:
    """A sweep grid over the series: one SAP fold-0 + tuning-fold fine-tuning and evaluation per element."""
    path = folder / "sweep" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(sort_keys=False, data={
        "profile": "smoke", "base_dir": name, "reuse": str(series_dir(folder)),
        "notebooks": ["04_lesion_finetuning", "05_lesion_analysis"],
        "fixed": {"lesion.inits": ["sap"], "lesion.val_max_scans": 1, "eval.n_bootstrap": 20},
        "grid": {"seed": [1], "lesion.label_fraction": label_fractions},
        "resources": {"array_parallelism": 2, "time_min": 30},
    }))
    return path


def run_series(folder: Path) -> None:
    from sapkit.pipeline.reproduce import reproduce

    reproduce("smoke", series_dir(folder), progress=False)


def run_sweep(folder: Path) -> None:
    """Two elements side by side in a local job array (the fewest that run in parallel), then the first
    one alone in this process (``--jobs 1``); both summaries are pickled for the test to compare."""
    from sapkit.pipeline.sweep import sweep

    array = sweep(sweep_grid(folder, "array", [0.5, 1.0]), executor="local", progress=False)
    array.to_pickle(folder / "sweep" / "array.pkl")
    serial = sweep(sweep_grid(folder, "serial", [0.5]), jobs=1, progress=False)
    serial.to_pickle(folder / "sweep" / "serial.pkl")


def main(folder: Path, stages: list[str]) -> None:
    unknown = set(stages) - set(STAGES)
    if unknown:
        raise SystemExit(f"unknown stage(s) {sorted(unknown)}; choose from {STAGES}")
    for stage in STAGES:
        if stage in stages:
            {"series": run_series, "sweep": run_sweep}[stage](folder)
            (folder / f"{stage}.done").write_text("")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
