"""sapkit reproduce on tiny stand-in notebooks: parameters, skipping, failures."""

import re
from pathlib import Path

import nbformat
import pytest

from sapkit.errors import ConfigError, SapkitError
from sapkit.io.run_paths import RunDir
from sapkit.pipeline.reproduce import kernel_name, run_notebook


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
    assert first.output == RunDir(run_dir).notebook("ok")
    executed = nbformat.read(str(first.output), as_version=4)
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
    assert not RunDir(tmp_path).notebook_marker("bad").exists()  # a failed notebook is never "complete"


def test_unknown_notebook_and_bad_override_fail_fast(tmp_path):
    from sapkit.pipeline.reproduce import reproduce

    with pytest.raises(SapkitError, match="choose from 00_data"):
        reproduce("smoke", tmp_path, notebooks=["07_nope"], progress=False)
    with pytest.raises(ConfigError, match="unknown config key 'lesion.epochz'"):
        reproduce("smoke", tmp_path, {"lesion.epochz": 1}, progress=False)



def test_a_killed_kernel_is_reported_with_notebook_cell_and_resume_command(tmp_path):
    folder = tmp_path / "nbs"
    folder.mkdir()
    _notebook(folder / "oom.ipynb", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer does")
    params = {"profile": "demo", "run_dir": str(tmp_path / "run"), "overrides": {"lesion.epochs": 2}}
    with pytest.raises(SapkitError) as info:
        run_notebook("oom", tmp_path / "run", params, source_dir=folder, kernel=kernel_name())
    message = str(info.value)
    assert re.search(r"notebook oom failed in code cell \d+ \(`import os, signal`\): the kernel died — out of memory\?",
                     message), message
    assert f"resume with `sapkit reproduce --profile demo --run-dir {tmp_path / 'run'} -p lesion.epochs=2`" in message
    assert not RunDir(tmp_path / "run").notebook_marker("oom").exists()


def _digests(folder: Path) -> dict[str, str]:
    import hashlib

    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.ipynb"))}


@pytest.mark.parametrize("command", [
    ["reproduce", "--profile", "smoke", "--run-dir", "{root}"],
    ["reproduce", "--profile", "smoke", "--run-dir", "{root}/notebooks/mine"],
    ["seeds", "--profile", "smoke", "--run-dir", "{root}", "--out", "{tmp}/study"],
    ["seeds", "--profile", "smoke", "--run-dir", "{tmp}/base", "--out", "{root}/notebooks/study"],
])
def test_no_run_lands_on_the_kits_own_notebooks(command, tmp_path, capsys, monkeypatch):
    """A run folder at the repository root would write its executed notebooks over the series itself."""
    from sapkit.cli import main
    from sapkit.pipeline.reproduce import notebooks_dir

    source = notebooks_dir()
    root = source.parent
    before, entries = _digests(source), sorted(p.name for p in source.iterdir())
    monkeypatch.chdir(tmp_path)
    code = main([c.format(root=root, tmp=tmp_path) for c in command])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert "notebook series" in err and "never writes" in err
    assert _digests(source) == before and sorted(p.name for p in source.iterdir()) == entries  # nothing written
    assert not (root / "config.yaml").exists() and not (tmp_path / "study").exists()


def test_the_python_api_refuses_it_too(tmp_path):
    """reproduce() and run_notebook() check before writing: the notebooks and sweeps call them directly."""
    from sapkit.errors import OutputPathError
    from sapkit.pipeline.reproduce import check_run_dir, notebooks_dir, reproduce

    source = notebooks_dir()
    with pytest.raises(OutputPathError, match="over the kit's notebooks"):
        reproduce("smoke", source.parent)
    with pytest.raises(OutputPathError, match="inside the kit's notebooks folder"):
        check_run_dir(source / "run")
    check_run_dir(tmp_path / "runs" / "smoke")  # an ordinary run folder passes
    own = tmp_path / "notebooks"  # a series of one's own, run with its parent folder as the run folder
    own.mkdir()
    _notebook(own / "ok.ipynb", "pass")
    before = (own / "ok.ipynb").read_bytes()
    with pytest.raises(OutputPathError, match="over the kit's notebooks"):
        run_notebook("ok", tmp_path, {}, source_dir=own)
    assert (own / "ok.ipynb").read_bytes() == before and not (own / "ok.done.json").exists()
