"""The premise of predictive resampling: martingale, exchangeability and coverage read-outs
(:mod:`lrpfn.premise`), the PFN beside the exact predictor of its training distribution."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from . import COLORS, pool_label, style


def _pool_colours(sizes) -> dict[str, tuple]:
    ordered = sorted(sizes, key=float)
    return dict(zip(ordered, plt.cm.viridis(np.linspace(0.05, 0.85, len(ordered))), strict=True))


def premise_figure(martingale: pd.DataFrame, exchangeability: pd.DataFrame, coverage: pd.DataFrame) -> plt.Figure:
    """KL and relative variance drift against the horizon k at the final checkpoints (new tasks,
    the shortest prompt length), exchangeability KL against the prompt length, and the 90 %
    (or widest) coverage per prefix length; seeds averaged."""
    style()
    fig = plt.figure(figsize=(13, 4.2))
    grid = fig.add_gridspec(2, 3)
    kl_ax, drift_ax = fig.add_subplot(grid[:, 0]), fig.add_subplot(grid[:, 1])
    exchange_ax, cover_ax = fig.add_subplot(grid[0, 2]), fig.add_subplot(grid[1, 2])
    colours = _pool_colours(martingale.pool_size.unique())
    final = martingale[(martingale.step == martingale.groupby("pool_size").step.transform("max"))]
    final = final[(final.tasks == "true") & (final.prompt_length == final.prompt_length.min())]
    curves = final.groupby(["pool_size", "k"], sort=False).mean(numeric_only=True).reset_index()
    for pool_size, curve in curves.groupby("pool_size", sort=False):
        colour, label = colours[pool_size], f"M = {pool_label(pool_size)}"
        kl_ax.plot(curve.k, curve.model_kl, color=colour, marker="o", ms=3, label=f"{label}, PFN")
        kl_ax.plot(curve.k, curve.reference_kl, color=colour, ls="--", lw=1)
        drift_ax.errorbar(curve.k, curve.model_var_drift, yerr=2 * curve.model_var_drift_se, color=colour,
                          marker="o", ms=3, capsize=2, label=label)  # fmt: skip
        drift_ax.plot(curve.k, curve.reference_var_drift, color=colour, ls="--", lw=1)
    n = int(final.prompt_length.min()) if len(final) else 0
    kl_ax.set(xscale="log", yscale="log", xlabel="continuation length k", ylabel="KL(today ‖ mean after k) [nats]",
              title=f"martingale gap, {n} observed pairs")  # fmt: skip
    kl_ax.plot([], [], color="grey", ls="--", lw=1, label="exact Bayes (floor)")
    kl_ax.legend(fontsize=6)
    drift_ax.axhline(0, color="black", lw=0.6)
    drift_ax.set(xscale="log", xlabel="continuation length k", ylabel="relative variance drift",
                 title="variance of the averaged predictive / today's − 1")  # fmt: skip

    exchange = exchangeability.groupby(["pool_size", "prompt_length"], sort=False).mean(numeric_only=True)
    for pool_size, rows in exchange.reset_index().groupby("pool_size", sort=False):
        exchange_ax.plot(rows.prompt_length, rows.model_mean_kl, color=colours[pool_size], marker="o", ms=3)
    floor = exchangeability.reference_max_kl.abs().max() if len(exchangeability) else np.nan
    exchange_ax.set(yscale="log", xlabel="observed pairs", ylabel="KL [nats]",
                    title=f"exchangeability (exact Bayes ≤ {floor:.0e})")  # fmt: skip

    if len(coverage):
        level = 0.9 if (coverage.level == 0.9).any() else coverage.level.max()
        cover = coverage[coverage.level == level].groupby(["pool_size", "prefix_length"], sort=False)
        cover = cover.mean(numeric_only=True).reset_index()
        names = {"model": "PFN", "reference": "exact resampler", "posterior": "exact posterior"}
        width = 0.8 / len(names)
        for j, (name, label) in enumerate(names.items()):
            x = np.arange(len(cover)) + (j - 1) * width
            cover_ax.bar(x, cover[f"{name}_coverage"], width, label=label,
                         color=COLORS.get(name, "grey") if name != "posterior" else "lightgrey")  # fmt: skip
        cover_ax.axhline(level, color="black", lw=0.6)
        labels = [f"M={pool_label(m)}, n={n}" for m, n in zip(cover.pool_size, cover.prefix_length, strict=True)]
        cover_ax.set_xticks(np.arange(len(cover)), labels)
        cover_ax.tick_params(axis="x", labelsize=6)
        cover_ax.set(ylim=(0, 1.05), ylabel=f"coverage of {level:.0%}")
        cover_ax.legend(fontsize=5, loc="lower right")
    else:
        cover_ax.set_axis_off()
    fig.suptitle("Is the PFN Bayesian? Martingale, exchangeability and coverage against exact Bayes")
    fig.tight_layout()
    return fig
