"""sapkit reproduce on tiny stand-in notebooks: parameters, skipping, failures, report, sweep."""

from pathlib import Path

import nbformat
import pandas as pd
import pytest

from sapkit.errors import ConfigError, SapkitError
from sapkit.pipeline.reproduce import kernel_name, run_notebook
from sapkit.pipeline.sweep import aggregate_runs, expand_grid, load_grid, run_name


def _notebook(path: Path, body: str) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "smoke"\nrun_dir = "runs/smoke"\noverrides = {}')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# test"), params, nbformat.v4.new_code_cell("import pathlib"),
                nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))
    return path


@pytest.fixture
def notebooks(tmp_path):
    folder = tmp_path / "nbs"
    folder.mkdir()
    _notebook(folder / "ok.ipynb",
              "p = pathlib.Path(run_dir) / 'out.txt'\np.write_text(f\"{profile} {overrides.get('x', 0)}\")")
    _notebook(folder / "bad.ipynb", "if overrides.get('fail'):\n    raise RuntimeError('deliberate failure')")
    return folder


def test_parameters_reach_the_notebook_and_complete_runs_are_skipped(notebooks, tmp_path):
    run_dir = tmp_path / "run"
    params = {"profile": "demo", "run_dir": str(run_dir), "overrides": {"x": 3}}
    first = run_notebook("ok", run_dir, params, source_dir=notebooks, kernel=kernel_name())
    assert first.status == "ran" and (run_dir / "out.txt").read_text() == "demo 3"
    executed = nbformat.read(str(run_dir / "notebooks" / "ok.ipynb"), as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    assert run_notebook("ok", run_dir, params, source_dir=notebooks).status == "skipped"
    assert run_notebook("ok", run_dir, params, source_dir=notebooks, force=True).status == "ran"
    changed = dict(params, overrides={"x": 4})  # other parameters: not complete any more
    assert run_notebook("ok", run_dir, changed, source_dir=notebooks).status == "ran"
    assert (run_dir / "out.txt").read_text() == "demo 4"


def test_failure_names_notebook_and_cell(notebooks, tmp_path):
    params = {"profile": "smoke", "run_dir": str(tmp_path), "overrides": {"fail": True}}
    with pytest.raises(SapkitError, match=r"notebook bad failed in code cell \d+ .*RuntimeError: deliberate failure"):
        run_notebook("bad", tmp_path, params, source_dir=notebooks)
    assert not (tmp_path / "notebooks" / "bad.done.json").exists()  # a failed notebook is never "complete"


def test_unknown_notebook_and_bad_override_fail_fast(tmp_path):
    from sapkit.pipeline.reproduce import reproduce

    with pytest.raises(SapkitError, match="choose from 00_data"):
        reproduce("smoke", tmp_path, notebooks=["07_nope"], progress=False)
    with pytest.raises(ConfigError, match="unknown config key 'lesion.epochz'"):
        reproduce("smoke", tmp_path, {"lesion.epochz": 1}, progress=False)


def test_grid_expansion_and_aggregation(tmp_path):
    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text("profile: smoke\nbase_dir: sweep\nfixed: {lesion.epochs: 1}\n"
                         "grid:\n  seed: [1, 2]\n  lesion.label_fraction: [0.5, 1.0]\n")
    grid = load_grid(grid_file)
    combos = expand_grid(grid)
    assert len(combos) == 4 and all(c["lesion.epochs"] == 1 for c in combos)
    assert run_name(combos[1], list(grid.grid)) == "seed=1__lesion.label_fraction=1.0"
    runs = {}
    for i, c in enumerate(combos):
        d = tmp_path / f"r{i}"
        (d / "eval").mkdir(parents=True)
        pd.DataFrame({"init": ["sap", "sap", "scratch", "scratch"], "f2": [0.2, 0.4 + i, 0.1, 0.3],
                      "dice": [0.5, 0.7, 0.2, 0.4]}).to_csv(d / "eval" / "patients.csv", index=False)
        runs[f"r{i}"] = (c, d)
    summary = aggregate_runs(runs)
    assert len(summary) == 8
    row = summary[(summary.run == "r3") & (summary.init == "sap")].iloc[0]
    assert row["median_f2"] == pytest.approx((0.2 + 3.4) / 2) and row["median_dice"] == pytest.approx(0.6)
    assert row["lesion.label_fraction"] == 1.0 and row["seed"] == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("grid: {seed: []}\n")
    with pytest.raises(ConfigError, match="non-empty lists"):
        load_grid(bad)
