"""The task-diversity sweep: MSE and distances against M, training losses, in-context curves."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .. import roles
from ..config import TaskFamily
from . import COLORS, TASKS_TITLE, format_pool_axis, pool_axis, pool_label, style


def task_diversity_figure(seeds: pd.DataFrame, thresholds: pd.DataFrame, prior: TaskFamily) -> plt.Figure:
    """2x3: rows T_M / T_true; MSE/D vs M (seed means at the final checkpoint, bars: sd over
    seeds), model-dMMSE and model-Bayes differences vs M per checkpoint (seed means); under a
    true prior other than N(0, I) its Bayes predictor beside the moment-matched ridge.
    ``seeds`` is the summary over seeds (:func:`lrpfn.sweep.over_seeds`, tables/summary_seeds)."""
    style()
    names = roles.shown(prior)
    labels = {name: roles.label(name, prior) for name in [*names, "bayes"]}
    generalising = "bayes"
    final = seeds[seeds.final]
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5), sharex=True)
    steps = sorted(seeds.step.unique())
    palette = sns.color_palette("Blues", len(steps) + 1)[1:]
    for row, tasks in enumerate(["pool", "true"]):
        data = final[final.tasks == tasks]
        x, inf_x = pool_axis(data["pool_size"])
        order = np.argsort(x)
        ax = axes[row, 0]
        for name in names:
            col = f"mse_{name}"
            ax.errorbar(
                x[order], data[col].to_numpy()[order], yerr=data[f"{col}_sd"].fillna(0).to_numpy()[order],
                marker="o", ms=4, capsize=2, color=COLORS[name], label=labels[name],
            )  # fmt: skip
        ax.set_ylabel(f"MSE/D on {TASKS_TITLE[tasks]}")
        ax.legend(fontsize=8)
        for col, ax, title in (
            (1, axes[row, 1], "PFN – dMMSE"),
            (2, axes[row, 2], f"PFN – {labels[generalising]}"),
        ):
            metric = "delta_dmmse" if col == 1 else f"delta_{generalising}"
            sub = seeds[seeds.tasks == tasks]
            for color, step in zip(palette, steps, strict=True):
                at = sub[sub.step == step]
                xs, _ = pool_axis(at["pool_size"])
                o = np.argsort(xs)
                ax.plot(xs[o], at[metric].to_numpy()[o], marker="o", ms=3, color=color, label=f"step {step}")
            ax.set_yscale("log")
            ax.set_ylabel(f"{title}, mean sq. diff. / D")
            if row == 0:
                ax.set_title(title)
        for ax in axes[row]:
            format_pool_axis(ax, seeds["pool_size"], inf_x)
            _mark_thresholds(ax, thresholds, labels["bayes"])
        axes[row, 2].legend(fontsize=7, title="checkpoint", title_fontsize=7)
    axes[0, 0].set_title("MSE/D")
    target = "ridge (the true prior)" if prior.is_default else f"{labels['bayes']}, the true prior's predictor"
    fig.suptitle(f"Task diversity: the PFN moves from dMMSE (memorising the pool) to {target}")
    fig.tight_layout()
    return fig


def _mark_thresholds(ax, thresholds: pd.DataFrame, name: str):
    """M* (all seeds together) as a vertical line; an unresolved closer-to-ridge estimate as its
    shaded bracket. The budget crossing's label says whether it compared two runs or a proxy."""
    for _, row in thresholds[thresholds.seeds == "all"].iterrows():
        if row.method.startswith("closer_to_"):
            ls, label = "-", f"M* (closer to {'ridge' if name == 'ridge' else 'Bayes'})"
        else:
            budgets = {"checkpoints": "checkpoint proxy", "runs": "two budgets"}.get(row.budgets, "no second budget")
            ls, label = "--", f"M* (budget crossing, {budgets})"
        if np.isfinite(row.pool_size_star):
            ax.axvline(row.pool_size_star, color="0.3", ls=ls, lw=1, label=label)
        elif row.method.startswith("closer_to_") and np.isfinite(row.lower) and np.isfinite(row.upper):
            ax.axvspan(row.lower, row.upper, color="0.85", zorder=0, label="M* bracket (unresolved)")


def losses_figure(logs: pd.DataFrame, seeds: pd.DataFrame) -> plt.Figure:
    """Per M: training loss (``loss_smooth`` of tables/train_log) and evaluation NLL at
    checkpoints (seed means, tables/summary_seeds), with the Bayes floor."""
    style()
    sizes = sorted(logs.pool_size.unique(), key=float)
    cols = min(4, len(sizes))
    rows = math.ceil(len(sizes) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.8 * rows), squeeze=False, sharey=True)
    for ax, pool_size in zip(axes.flat, sizes, strict=False):  # the grid may have spare panels
        for seed, log in logs[logs.pool_size == pool_size].groupby("seed"):
            ax.plot(log.step, log.loss_smooth, color="0.5", lw=0.8,
                    label="train loss" if seed == logs.seed.min() else None)  # fmt: skip
        nll = seeds[(seeds.pool_size == pool_size) & (seeds.tasks == "pool")].set_index("step")
        ax.plot(nll.index, nll.nll_model, "o-", color=COLORS["model"], ms=4, label="eval NLL on $T_M$")
        floor = nll.nll_bayes if pool_size == "inf" else nll.nll_dmmse
        ax.axhline(floor.iloc[-1], color=COLORS["bayes" if pool_size == "inf" else "dmmse"], ls="--", lw=1,
                   label="Bayes NLL floor")  # fmt: skip
        ax.set_xscale("log")
        ax.set_title(f"M = {pool_label(pool_size)}")
        ax.set_xlabel("training step")
    for ax in axes.flat[len(sizes) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("NLL (nats / position)")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("Training loss and evaluation NLL per pool size")
    fig.tight_layout()
    return fig


def in_context_figure(
    seeds: pd.DataFrame, context_length: int, prior: TaskFamily, max_length: int | None = None
) -> plt.Figure:
    """Columns: pool sizes; rows: MSE/D and NLL on T_M and on T_true, against the number of
    in-context examples, past the context length K and the longest trained length
    (``max_length``, when longer; vertical lines). Lines are means over seeds
    (tables/in_context_seeds): PFN, dMMSE (finite M), ridge and, under a true prior other than
    N(0, I), its Bayes predictor; dotted, the head's floor (the true prior's Bayes predictive
    in the run's head)."""
    longest = max_length or context_length
    style()
    names = roles.shown(prior) + (["floor"] if "mse_floor" in seeds.columns else [])
    labels = {name: roles.label(name, prior) for name in names}
    sizes = sorted(seeds.pool_size.unique(), key=float)
    rows = [("mse", "pool"), ("mse", "true"), ("nll", "pool"), ("nll", "true")]
    fig, axes = plt.subplots(
        len(rows), len(sizes), figsize=(2.5 * len(sizes), 2.1 * len(rows)), squeeze=False, sharex=True
    )
    for col, pool_size in enumerate(sizes):
        data = seeds[seeds.pool_size == pool_size]
        for row, (metric, tasks) in enumerate(rows):
            ax = axes[row, col]
            curve = data[data.tasks == tasks].set_index("position")
            for name in names:
                values = curve[f"{metric}_{name}"]
                if values.notna().any():
                    ax.plot(curve.index, values, color=COLORS[name], lw=1.2 if name == "model" else 1,
                            ls={"model": "-", "floor": ":"}.get(name, "--"), label=labels[name])  # fmt: skip
            k_label = "context length K" if longest > context_length else "trained length K"
            ax.axvline(context_length, color="0.4", ls=":", lw=1, label=k_label)
            if longest > context_length:
                ax.axvline(longest, color="0.4", ls="-.", lw=1, label="longest trained length")
            if metric == "mse":
                ax.set_yscale("log")
            if row == 0:
                ax.set_title(f"M = {pool_label(pool_size)}")
            if col == 0:
                what = "MSE/D" if metric == "mse" else "NLL (nats)"
                ax.set_ylabel(f"{what}\non {TASKS_TITLE[tasks]}", fontsize=8)
        axes[-1, col].set_xlabel("in-context examples")
    axes[1, 0].legend(fontsize=7)  # the first pool size has all three predictors
    past = (
        "the trained context length K (dotted)"
        if longest == context_length
        else "the context length K (dotted) and the longest trained length (dash-dotted)"
    )
    fig.suptitle(f"In-context curves: error vs number of examples, continued past {past}")
    fig.tight_layout()
    return fig
