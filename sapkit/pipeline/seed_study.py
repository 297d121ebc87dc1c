"""``sapkit seeds``: repeat a run with other training seeds and other cohort seeds, then aggregate.

Layout of the study folder ``OUT`` (default ``runs/seed_study``)::

    OUT/grids/training.yaml  cohort.yaml         the sweep grids this study ran (sapkit sweep format)
    OUT/training/seed=S/                         notebooks 04–05 with training seed S, reusing BASE's
                                                 data, splits and pretrained models
    OUT/cohort/synth.seed=C/                     the whole series on the synthetic cohort of seed C
    OUT/seed_study.md                            the tables (README block: ``sapkit readme --seed-study OUT``)
    OUT/training_*.csv  OUT/cohort_*.csv         per-run medians, signs and pooled tests, paired differences
    OUT/report.html                              the tables and the per-seed paired-difference figures

The base run (``BASE``, default ``runs/<profile>``) counts as the training seed and the cohort
seed of its own configuration; it is run first when it has not finished.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from sapkit.config import load_config
from sapkit.errors import ConfigError
from sapkit.evaluation.seeds import SeedStudy, seed_study, seed_study_markdown
from sapkit.io.atomic import atomic_write_csv, atomic_write_text
from sapkit.io.machine import machine_summary
from sapkit.io.run_paths import RunDir, default_run_dir
from sapkit.pipeline.sweep import run_name

__all__ = ["write_seed_grids", "run_seed_study", "summarize_seed_study", "seed_study_report"]

_FINETUNE = ("04_lesion_finetuning", "05_lesion_analysis")


def write_seed_grids(out: Path, *, profile: str, base: Path, training_seeds: Sequence[int],
                     cohort_seeds: Sequence[int], overrides: Mapping[str, Any] | None = None) -> dict[str, Path]:
    """Write the sweep grid files of the study into ``out/grids`` (kinds with no seeds are left out)."""
    grids = {}
    fixed = dict(overrides or {})
    specs = {
        "training": {"profile": profile, "base_dir": str(out / "training"), "notebooks": list(_FINETUNE),
                     "reuse": str(base), "fixed": fixed, "grid": {"seed": [int(s) for s in training_seeds]}},
        "cohort": {"profile": profile, "base_dir": str(out / "cohort"), "fixed": fixed,
                   "grid": {"synth.seed": [int(s) for s in cohort_seeds]}},
    }
    for kind, spec in specs.items():
        if next(iter(spec["grid"].values())):
            path = out / "grids" / f"{kind}.yaml"
            atomic_write_text(path, f"# written by sapkit seeds ({kind} seeds)\n" + yaml.safe_dump(spec, sort_keys=False))
            grids[kind] = path
    return grids


def _runs(out: Path, base: Path, kind: str, seeds: Sequence[int], base_seed: int, *, finished_only: bool) -> dict[int, Path]:
    key = "seed" if kind == "training" else "synth.seed"
    runs = {base_seed: base}
    for s in seeds:
        if int(s) != base_seed:
            runs[int(s)] = out / kind / run_name({key: int(s)}, [key])
    if finished_only:
        runs = {s: d for s, d in runs.items() if RunDir(d).eval_table("patients").is_file()}
    return runs


def run_seed_study(profile: str, out: str | Path | None = None, *, base: str | Path | None = None,
                   training_seeds: Sequence[int] = (1, 2, 3, 4), cohort_seeds: Sequence[int] = (1, 2),
                   overrides: Mapping[str, Any] | None = None, jobs: int = 1, executor: str | None = None,
                   resources: Any = None, resume: bool = False, kernel: str | None = None,
                   progress: bool = True) -> dict[str, SeedStudy]:
    """Run the base run (if unfinished), the training-seed and cohort-seed sweeps, then aggregate.

    Parameters
    ----------
    training_seeds, cohort_seeds : sequence of int
        Seeds besides the base run's own (``seed`` and ``synth.seed`` of its configuration).
    jobs, executor, resources, resume, kernel
        As for :func:`sapkit.pipeline.sweep.sweep` (finished notebooks are never rerun).
    """
    from sapkit.pipeline.reproduce import reproduce
    from sapkit.pipeline.sweep import sweep

    config = load_config(profile, overrides)
    base = Path(base or default_run_dir(config.profile)).resolve()
    out = Path(out or Path("runs") / "seed_study").resolve()
    if base == out or base in out.parents or out in base.parents:
        raise ConfigError(f"the study folder {out} and the base run {base} must not contain each other; "
                          "choose another --out")
    if not RunDir(base).eval_table("patients").is_file():
        reproduce(profile, base, overrides, kernel=kernel, progress=progress)
    for path in write_seed_grids(out, profile=profile, base=base, training_seeds=training_seeds,
                                 cohort_seeds=cohort_seeds, overrides=overrides).values():
        sweep(path, jobs=jobs, kernel=kernel, progress=progress, executor=executor, resources=resources, resume=resume)
    return summarize_seed_study(out, base=base, training_seeds=training_seeds, cohort_seeds=cohort_seeds)


def summarize_seed_study(out: str | Path, *, base: str | Path, training_seeds: Sequence[int] = (1, 2, 3, 4),
                         cohort_seeds: Sequence[int] = (1, 2)) -> dict[str, SeedStudy]:
    """Aggregate the finished runs of a study into ``out`` (tables, markdown, report); returns the studies."""
    out, base = Path(out), Path(base)
    config = yaml.safe_load(RunDir(base).config_yaml.read_text())
    machine = machine_summary(json.loads(RunDir(base).versions_json.read_text()).get("machine", {}))
    studies: dict[str, SeedStudy] = {}
    for kind, seeds, base_seed in (("training", training_seeds, int(config["seed"])),
                                   ("cohort", cohort_seeds, int(config["synth"]["seed"]))):
        runs = _runs(out, base, kind, seeds, base_seed, finished_only=True)
        if len(runs) >= 2:
            studies[kind] = seed_study(runs, kind=kind)
    if not studies:
        raise ConfigError(f"no seed of the study in {out} has finished besides the base run {base}; "
                          "run `sapkit seeds` first")
    for kind, study in studies.items():
        for name in ("runs", "per_run", "signs", "differences"):
            atomic_write_csv(getattr(study, name), out / f"{kind}_{name}.csv")
    text = "\n".join(seed_study_markdown(s, machine=machine) for s in studies.values())
    atomic_write_text(out / "seed_study.md", text)
    atomic_write_text(out / "report.html", seed_study_report(studies))
    return studies


def seed_study_report(studies: Mapping[str, SeedStudy]) -> str:
    """A self-contained offline HTML page (the run report's renderer): per kind of seed, the verdicts,
    the medians and ranges over runs, the sign counts with the pooled tests and the per-seed
    paired-difference figure."""
    import html

    from sapkit.evaluation.seeds import verdicts
    from sapkit.pipeline.html_report import render_page
    from sapkit.plotting.seed_figures import seed_differences_figure

    parts, figures = ["<h1>Seed study: which results hold across draws</h1>"], []
    for kind, study in studies.items():
        holds, fails = verdicts(study)
        seeds = ", ".join(str(s) for s in study.runs["seed"])
        parts.append(f"<h2>{len(study.runs)} {html.escape(kind)} seeds: {html.escape(seeds)}</h2>"
                     f"<p><b>Holds</b>: {html.escape('; '.join(holds) or 'nothing')}.</p>"
                     f"<p><b>Does not hold</b>: {html.escape('; '.join(fails) or 'nothing')}.</p>")
        parts.append("<h3>Median over test patients per run: median (min–max) over runs</h3>"
                     + study.across.drop(columns=["metric"]).to_html(index=False, float_format=lambda v: f"{v:.3f}"))
        parts.append("<h3>SAP against each init: runs ahead / behind, and the pooled test (docs/metrics.md §16)</h3>"
                     + study.signs.drop(columns=["metric"]).to_html(index=False, float_format=lambda v: f"{v:.3g}"))
        fig = seed_differences_figure(study.differences, title=None, seed_label=f"{kind} seed")
        fig.layout.title = None
        parts.append(f"<h3>Per-seed paired differences ({html.escape(kind)} seeds)</h3>"
                     f"<div id='fig{len(figures)}' class='figure'></div>")
        figures.append(json.loads(fig.to_json()))
    return render_page("sapkit seed study", parts, figures)
