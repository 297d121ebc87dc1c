"""Which run a notebook opened in JupyterLab works on: ``profile = "auto"``, ``run_dir = "auto"``.

Every notebook's parameters cell defaults to ``"auto"`` for both; the configuration cell calls
:func:`resolve_run`, which picks the most recently changed run folder under the repository's
``runs/`` that holds ``config.yaml`` and what this notebook reads (``needs``), takes the profile
from that ``config.yaml`` (overrides included) and prints which run it chose and how to choose
another. ``sapkit reproduce`` passes explicit values, which win unchanged, so headless runs do not
depend on what else lies in ``runs/``.

What a notebook needs (``needs``):

============  =====================================================================================
``None``      nothing: notebooks 00 and 00a make a run; without any run they start ``runs/smoke``
``"data"``    ``data/manifest.yaml`` (notebook 01)
``"splits"``  the manifest and ``splits.json`` (notebooks 02 and 03)
``"pretrained"``  ``splits.json`` and the pretrained model of every SAP/SSL init of the run's
              ``lesion.inits``: ``skeleton/model_final.pt``, ``ssl/model_final.pt`` (notebook 04)
``"predictions"``  probability maps in ``predictions/<init>/`` for every init of ``lesion.inits``
              (notebook 05)
============  =====================================================================================
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, NamedTuple, TextIO

from sapkit.config import Config, load_config
from sapkit.errors import ConfigError
from sapkit.io.run_paths import PROB_SUFFIX, RunDir, default_run_dir, notebook_run_dir

__all__ = ["AUTO", "NEEDS", "RunChoice", "resolve_run", "run_problem"]

#: The parameter value that asks :func:`resolve_run` to choose.
AUTO = "auto"
#: The profile a notebook that makes a run starts when ``runs/`` holds none.
_FIRST_PROFILE = "smoke"
_MAKE_RUN = "`make demo` (or `sapkit reproduce --profile smoke`) in the repository, or notebook 00"


class RunChoice(NamedTuple):
    """The resolved notebook parameters: ``profile, run_dir = resolve_run(...)``."""

    profile: str
    run_dir: Path


def _root(rd: RunDir) -> Path:
    """The run folder of ``rd``."""
    return rd.config_yaml.parent


def _pretrained_problem(rd: RunDir, config: Config) -> str | None:
    for init, md in (("sap", rd.skeleton), ("ssl", rd.ssl)):
        if init in config.lesion.inits and not md.model("final").is_file():
            return f"no {md.model('final').relative_to(_root(rd)).as_posix()} (for init {init})"
    return None


def _predictions_problem(rd: RunDir, config: Config) -> str | None:
    for init in config.lesion.inits:
        folder = rd.predictions(init)
        if not folder.is_dir() or not any(folder.glob(f"*{PROB_SUFFIX}")):
            return f"no probability maps in predictions/{init}/"
    return None


def _file_problem(*names: str) -> Callable[[RunDir, Config], str | None]:
    def check(rd: RunDir, config: Config) -> str | None:
        for name in names:
            if not (_root(rd) / name).is_file():
                return f"no {name}"
        return None

    return check


#: What each ``needs`` value checks, and how it is named in messages.
NEEDS: dict[str | None, tuple[str, list[Callable[[RunDir, Config], str | None]]]] = {
    None: ("a config.yaml", []),
    "data": ("a data manifest (notebook 00)", [_file_problem("data/manifest.yaml")]),
    "splits": ("patient splits (notebook 00)", [_file_problem("data/manifest.yaml", "splits.json")]),
    "pretrained": ("pretrained skeleton/SSL models (notebooks 02 and 03)",
                   [_file_problem("splits.json"), _pretrained_problem]),
    "predictions": ("lesion predictions of every init (notebook 04)", [_file_problem("splits.json"), _predictions_problem]),
}


def run_problem(run_dir: str | Path, needs: str | None = None) -> str | None:
    """Why ``run_dir`` cannot serve a notebook that needs ``needs``, or None when it can.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     run_problem(d, "predictions")
    'no config.yaml'
    """
    if needs not in NEEDS:
        raise ConfigError(f"needs must be one of {sorted(NEEDS, key=str)}, got {needs!r}")
    rd = RunDir(run_dir)
    if not rd.config_yaml.is_file():
        return "no config.yaml"
    try:
        config = load_config(rd.config_yaml)
    except (ConfigError, OSError) as exc:
        return f"config.yaml does not load ({str(exc).splitlines()[0]})"
    for check in NEEDS[needs][1]:
        problem = check(rd, config)
        if problem:
            return problem
    return None


def _changed(rd: RunDir) -> float:
    """Latest modification time of the run folder, its config and its notebook markers (seconds)."""
    paths = [_root(rd), rd.config_yaml, rd.notebooks_dir, *rd.notebook_markers().values()]
    return max((p.stat().st_mtime for p in paths if p.exists()), default=0.0)


def resolve_run(profile: str = AUTO, run_dir: str | Path = AUTO, *, needs: str | None = None,
                runs_root: str | Path | None = None, stream: TextIO | None = None) -> RunChoice:
    """The ``profile`` and absolute ``run_dir`` a notebook works on; ``"auto"`` values are chosen here.

    Parameters
    ----------
    profile : str
        A profile name or YAML path, or ``"auto"``: the chosen run's ``config.yaml`` (its profile with
        the overrides it was made with).
    run_dir : path or "auto"
        A run folder (relative: from the repository root, :func:`sapkit.io.run_paths.notebook_run_dir`),
        or ``"auto"``: with an explicit profile ``runs/<profile>``; otherwise the most recently changed
        folder under ``runs_root`` whose ``config.yaml`` loads and that holds what ``needs`` names.
    needs : str, optional
        What the notebook reads (module docstring); ``None`` for a notebook that makes a run.
    runs_root : path, optional
        Where runs are looked for (default: ``runs/`` of the repository).
    stream : file, optional
        Where the choice is printed (default standard output); nothing is printed when both values are explicit.

    Returns
    -------
    RunChoice
        ``(profile, run_dir)``.

    Raises
    ------
    ConfigError
        ``"auto"`` found no run with what the notebook needs (the message names the parameter to set and
        the command that makes a run), or an explicit ``run_dir`` without ``config.yaml`` came with
        ``profile="auto"`` in a notebook that does not make runs.
    """
    if needs not in NEEDS:
        raise ConfigError(f"needs must be one of {sorted(NEEDS, key=str)}, got {needs!r}")
    auto_profile, auto_dir = str(profile) == AUTO, str(run_dir) == AUTO
    if not auto_profile and not auto_dir:
        return RunChoice(str(profile), notebook_run_dir(run_dir))
    say = (lambda text: print(text, file=stream)) if stream is not None else print
    how = ('choose another with run_dir = "runs/<name>" (a relative path counts from the repository root) '
           'in the parameters cell')
    if not auto_dir:
        rd = RunDir(notebook_run_dir(run_dir))
        if rd.config_yaml.is_file():
            say(f"profile: {rd.config_yaml} (the configuration run {_root(rd).name} was made with)")
            return RunChoice(str(rd.config_yaml), _root(rd))
        if needs is None:
            say(f'profile: {_FIRST_PROFILE} (a new run in {_root(rd)}; set profile = "demo" or a YAML path for another)')
            return RunChoice(_FIRST_PROFILE, _root(rd))
        raise ConfigError(f"run_dir {_root(rd)} holds no config.yaml, so profile = \"auto\" has nothing to read; "
                          f"set profile = \"smoke\" (or the profile the run was made with) in the parameters cell, "
                          f"or make the run first with {_MAKE_RUN}")
    if not auto_profile:
        path = notebook_run_dir(default_run_dir(str(profile)))
        say(f"run folder: {path} (runs/<profile> for profile {profile!r}; {how})")
        return RunChoice(str(profile), path)
    root = Path(runs_root) if runs_root is not None else notebook_run_dir("runs")
    candidates = sorted((RunDir(p) for p in (root.iterdir() if root.is_dir() else [])
                         if p.is_dir() and not p.name.startswith(".") and (p / "config.yaml").is_file()),
                        key=_changed, reverse=True)  # a folder without config.yaml (seed_study/) is no run
    skipped = []
    for rd in candidates:
        problem = run_problem(_root(rd), needs)
        if problem is None:
            others = "" if not skipped else f"; skipped newer {', '.join(skipped)}"
            made = load_config(rd.config_yaml).profile
            say(f"run folder: {_root(rd)} (the newest run in {root} with {NEEDS[needs][0]}{others})\n"
                f"profile: {rd.config_yaml} (the run's configuration, made with profile {made}, "
                f"overrides included)\n"
                f"{how}, and profile = \"auto\" or its profile")
            return RunChoice(str(rd.config_yaml), _root(rd))
        if len(skipped) < 5:
            skipped.append(f"{_root(rd).name} ({problem})")
    if needs is None:
        path = root / _FIRST_PROFILE
        say(f"run folder: {path} (no run in {root} yet: a new {_FIRST_PROFILE} run; {how})")
        return RunChoice(_FIRST_PROFILE, path)
    seen = f"; checked {', '.join(skipped)}" if skipped else f"; {root} holds no run folder"
    raise ConfigError(f"run_dir = \"auto\" found no run folder in {root} with {NEEDS[needs][0]}{seen}. "
                      f"Make a run with {_MAKE_RUN}, or set run_dir = \"path/to/run\" in this notebook's "
                      f"parameters cell (profile = \"auto\" reads its config.yaml)")
