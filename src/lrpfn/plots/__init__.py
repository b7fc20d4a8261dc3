"""Figures, each drawn from the pipeline's parquet tables (docs/design.md §11).

Tables compute, figures draw: every number a figure shows is a column of a table that a
tested library function wrote (seed means and spreads by :func:`lrpfn.sweep.over_seeds`,
posterior summaries by :func:`lrpfn.implied.posterior_summary`, ...); a figure function
selects rows, draws lines, histograms and KDEs, and labels. Predictors are named by role
(:mod:`lrpfn.roles`). One module per topic: :mod:`.sweep` (task diversity, losses,
in-context curves), :mod:`.resampling` (implied prior, posterior marginals, posteriors),
:mod:`.predictive` (predictive densities), :mod:`.premise` (martingale, exchangeability,
coverage), :mod:`.model` (the attention mask); this module
holds what they share.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..io import atomic_path
from ..roles import ROLES

COLORS = {key: role.colour for key, role in ROLES.items()}
TASKS_TITLE = {"pool": "pretraining tasks $T_M$", "true": "new tasks $T_{true}$"}


def style():
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.0)


def pool_label(pool_size: str) -> str:
    return "∞" if pool_size == "inf" else pool_size


def finish_checkpoint_grid(
    fig: plt.Figure, axes, steps, xlabel: str, title: str, path_lengths: dict | None = None
) -> plt.Figure:
    """A grid with one column per checkpoint: step titles on top (with the path length where
    the steps' differ), x labels below, the legend in the top-right panel, the figure's title."""
    several = path_lengths is not None and len(set(path_lengths.values())) > 1
    for ax, step in zip(axes[0], steps, strict=True):
        ax.set_title(f"step {step}" + (f", {path_lengths[step]}-point paths" if several else ""))
    for ax in axes[-1]:
        ax.set_xlabel(xlabel)
    axes[0, -1].legend(fontsize=6, loc="upper right")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def save(fig: plt.Figure, *paths) -> None:
    """Write the figure to each path (format from the suffix) and close it."""
    for path in paths:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=str(path).rsplit(".", 1)[-1], bbox_inches="tight", dpi=150)
    plt.close(fig)


def pool_axis(sizes: pd.Series) -> tuple[np.ndarray, float | None]:
    """x positions for pool sizes on a log axis; inf sits 4x beyond the largest finite size."""
    values = sizes.astype(float).to_numpy()
    finite = values[np.isfinite(values)]
    inf_x = (finite.max() * 4 if len(finite) else 1.0) if np.isinf(values).any() else None
    return np.where(np.isinf(values), inf_x if inf_x else np.nan, values), inf_x


def format_pool_axis(ax, sizes, inf_x):
    ax.set_xscale("log", base=2)
    ticks = sorted({float(s) for s in sizes})
    finite = [t for t in ticks if math.isfinite(t)]
    positions = finite + ([inf_x] if inf_x else [])
    labels = [f"$2^{{{round(math.log2(t))}}}$" if t > 0 and math.log2(t).is_integer() else f"{t:g}" for t in finite]
    ax.set_xticks(positions, labels + (["$\\infty$"] if inf_x else []))
    ax.minorticks_off()
    ax.set_xlabel("number of pretraining tasks $M$")


def marginal_panel(ax, values: np.ndarray, references: list[tuple], span: tuple[float, float]):
    """Histogram and KDE of the PFN's w_hat in one dimension, with a KDE of each exact
    reference's (values, colour, line style, label) over the same span."""
    ax.hist(values, bins=np.linspace(*span, 61), density=True, color=COLORS["model"], alpha=0.35,
            label="PFN (histogram)")  # fmt: skip
    sns.kdeplot(x=values, ax=ax, color=COLORS["model"], lw=1.2, label="PFN (KDE)", clip=span)
    for ref, color, ls, label in references:
        sns.kdeplot(x=ref, ax=ax, color=color, lw=1, ls=ls, label=label, clip=span)
    ax.set_xlim(*span)
