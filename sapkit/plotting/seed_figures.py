"""Figures of a seed study (:mod:`sapkit.evaluation.seeds`): per-seed paired differences between inits."""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from sapkit.errors import ConfigError
from sapkit.plotting.colors import init_color, init_label

__all__ = ["seed_differences_figure"]


def seed_differences_figure(differences: pd.DataFrame, *, metrics: Sequence[tuple[str, str]] = (
        ("f2", "F2 (patient level)"), ("global_dice", "global Dice")), title: str | None = None,
        seed_label: str = "training seed"):
    """Per-patient paired differences (SAP − other init), one box per seed, one panel per metric.

    Parameters
    ----------
    differences : DataFrame
        :attr:`sapkit.evaluation.seeds.SeedStudy.differences`: ``seed, scan_id, metric, a, b, difference``.
    metrics : sequence of (key, label)
        The panels, left to right.

    Returns
    -------
    plotly.graph_objects.Figure
        Boxes with every patient as a point, coloured by the init SAP is compared with; a dashed
        zero line: a box above it is a seed in which SAP led on most patients.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    missing = {"seed", "metric", "a", "b", "difference"} - set(differences.columns)
    if missing:
        raise ConfigError(f"differences table lacks columns {sorted(missing)}; build it with sapkit.evaluation.seeds")
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=[label for _, label in metrics])
    seeds = [str(s) for s in sorted(differences["seed"].unique())]
    for col, (metric, _) in enumerate(metrics, start=1):
        part = differences[differences["metric"] == metric]
        for (a, b), pair in part.groupby(["a", "b"], sort=False):
            fig.add_trace(go.Box(x=pair["seed"].astype(str), y=pair["difference"], name=f"{init_label(a)} − {init_label(b)}",
                                 legendgroup=f"{a}-{b}", showlegend=col == 1, boxpoints="all", jitter=0.4, pointpos=0,
                                 marker=dict(color=init_color(b), size=4), line=dict(color=init_color(b))),
                          row=1, col=col)
        fig.add_hline(y=0, line_dash="dash", line_color="grey", row=1, col=col)
    fig.update_xaxes(title_text=seed_label, type="category", categoryorder="array", categoryarray=seeds)
    fig.update_yaxes(title_text="per-patient difference", col=1)
    fig.update_layout(title=title or "Per-seed paired differences (each point one test patient)", boxmode="group",
                      height=420, template="plotly_white")
    return fig
