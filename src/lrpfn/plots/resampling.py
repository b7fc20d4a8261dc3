"""Predictive resampling: the implied prior, posterior marginals and posteriors against the exact references."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .. import roles
from ..config import TaskFamily
from ..priors import Prior, StandardGaussian
from . import COLORS, finish_checkpoint_grid, format_pool_axis, marginal_panel, pool_axis, pool_label, style


def implied_prior_figure(
    samples: pd.DataFrame,
    reference: pd.DataFrame,
    pool: np.ndarray | None,
    pool_size: str,
    n_dims: int,
    seed: int,
    prior: Prior,
    functions=None,
) -> plt.Figure:
    """Rows: the first dimensions of w; columns: checkpoints. Histogram + KDE of the PFN's
    resampled w_hat (implied prior) beside the exact reference resampler of the run's prior
    (and, for a pool, of the true prior), the true ``prior``'s marginal — its density with its
    point masses (a spike) marked — and the pool's values. With ``functions`` (a grid of t (G,)
    and the map of w (B, P) to the task's function on it, (B, G): a family on features), a last
    row shows the resampled functions: some of the PFN's paths and the central 90 % band of its
    functions at each t, beside the first exact reference's band. Where the samples read each
    path's residual variance (column ``noise_var``: tasks that draw their own noise), a last row
    shows its density on a log axis, the implied prior over sigma^2, beside the same reference's."""
    style()
    samples = samples[samples.kind == "prior"]
    reference = reference[(reference.kind == "prior") & (reference.replica == 0)]
    # (samples, colour, line style, label) of each exact reference drawn: the run's own prior
    # first, and beside a pool's the true prior's; beside the true prior's, where it is
    # another predictor, the moment-matched Gaussian's.
    default = isinstance(prior, StandardGaussian)
    if pool is None:
        references = [(reference[reference.reference == "bayes"], "black", "--", "exact reference")]
        if not default:
            references.append(
                (reference[reference.reference == "ridge"], "0.55", ":", "exact reference (moment-matched Gaussian)")
            )
    else:
        true_label = "Gaussian prior" if default else "true prior"
        references = [
            (reference[reference.reference == "dmmse"], "black", "--", "exact reference (pool prior)"),
            (reference[reference.reference == "bayes"], "0.55", ":", f"exact reference ({true_label})"),
        ]
    steps = sorted(samples.step.unique())
    dims = [d for d in range(n_dims) if f"w_{d}" in samples.columns]
    noise = "noise_var" in samples.columns
    rows = len(dims) + (functions is not None) + noise
    fig, axes = plt.subplots(
        rows, len(steps), figsize=(2.8 * len(steps), 2.2 * rows), squeeze=False, sharex=rows == len(dims)
    )
    for row, d in enumerate(dims):
        col_name = f"w_{d}"
        span = _prior_span(prior, d)
        grid = np.linspace(*span, 400)
        for col, step in enumerate(steps):
            ax = axes[row, col]
            at_step = samples[samples.step == step]
            length = at_step.path_length.iloc[0]  # the references at the step's path length
            drawn = [(r.loc[r.path_length == length, col_name].to_numpy(), *style) for r, *style in references]
            marginal_panel(ax, at_step[col_name].to_numpy(), drawn, span)
            _mark_prior(ax, prior, d, grid)
            if pool is not None:
                if len(pool) <= 64:
                    for v in pool[:, d]:
                        ax.axvline(v, color=COLORS["dmmse"], lw=0.8, alpha=0.8)
                    ax.plot([], [], color=COLORS["dmmse"], label="pool tasks")
                else:
                    ax.hist(
                        pool[:, d],
                        bins=np.linspace(*span, 61),
                        density=True,
                        histtype="step",
                        color=COLORS["dmmse"],
                        label="pool tasks",
                    )
            ax.set_ylabel(f"$w_{{{d}}}$" if col == 0 else "")
    exact, _, _, exact_label = references[0]
    # The rows below w's: (y label, x label, the panel drawn from a step's PFN and exact samples).
    extra = []
    if functions is not None:
        t, to_function = functions
        cols = [c for c in samples.columns if c.startswith("w_")]

        def function_row(ax, model: pd.DataFrame, ref: pd.DataFrame):
            f_model, f_ref = (to_function(frame[cols].to_numpy()) for frame in (model, ref))
            _function_panel(ax, t, f_model, f_ref, exact_label)

        extra.append(("$f(t u)$", "t (x = t u, u the unit diagonal)", function_row))
    if noise:

        def noise_row(ax, model: pd.DataFrame, ref: pd.DataFrame):
            _noise_panel(ax, model.noise_var.to_numpy(), ref.noise_var.to_numpy(), exact_label)

        extra.append(("density", "$\\log_{10}$ residual variance $\\hat\\sigma^2$ of a path", noise_row))
    for row, (ylabel, _, panel) in enumerate(extra, start=len(dims)):
        for col, step in enumerate(steps):
            at_step = samples[samples.step == step]
            panel(axes[row, col], at_step, exact[exact.path_length == at_step.path_length.iloc[0]])
        axes[row, 0].set_ylabel(ylabel)
    label = pool_label(pool_size)
    title = f"Implied prior of the PFN trained on M = {label} tasks (seed {seed}), by predictive resampling"
    lengths = samples.groupby("step").path_length.first().to_dict()
    fig = finish_checkpoint_grid(fig, axes, steps, "$\\hat w$", title, lengths)
    if extra:
        for row, (_, xlabel, _) in enumerate(extra, start=len(dims)):
            for ax in axes[row]:
                ax.set_xlabel(xlabel)
            axes[row, -1].legend(fontsize=6, loc="upper right")
        for ax in axes[len(dims) - 1]:
            ax.set_xlabel("$\\hat w$")
        fig.tight_layout()
    return fig


def _noise_panel(ax, model: np.ndarray, exact: np.ndarray, exact_label: str):
    """The implied prior over sigma^2: the density of log10 of the paths' residual variances,
    the PFN's as a histogram, the exact reference's as a line, each median marked."""
    model, exact = np.log10(model), np.log10(exact)
    bins = np.linspace(*np.quantile(np.concatenate([model, exact]), [0.002, 0.998]), 61)
    ax.hist(model, bins=bins, density=True, color=COLORS["model"], alpha=0.35, label="PFN")
    ax.hist(exact, bins=bins, density=True, histtype="step", color="black", ls="--", label=exact_label)
    ax.axvline(np.median(model), color=COLORS["model"], lw=1.0, label="medians")
    ax.axvline(np.median(exact), color="black", lw=1.0, ls="--")


def _function_panel(ax, t: np.ndarray, model: np.ndarray, exact: np.ndarray, exact_label: str, lines: int = 12):
    """Resampled functions on a grid t (G,): ``lines`` of the PFN's (B, G) and the central 90 %
    band of each set at every t."""
    for f in model[:lines]:
        ax.plot(t, f, color=COLORS["model"], lw=0.6, alpha=0.5)
    for values, colour, hatch, label in (
        (model, COLORS["model"], None, "PFN, 90 % band"),
        (exact, "black", "//", exact_label + ", 90 % band"),
    ):
        lo, hi = np.quantile(values, [0.05, 0.95], axis=0)
        if hatch is None:
            ax.fill_between(t, lo, hi, color=colour, alpha=0.15, lw=0, label=label)
        else:
            ax.fill_between(t, lo, hi, facecolor="none", edgecolor=colour, hatch=hatch, lw=0.6, label=label)
    ax.set_xlim(t[0], t[-1])


def _prior_span(prior: Prior, d: int) -> tuple[float, float]:
    """The w range of the implied-prior panels: (-4, 4) for N(0, 1), wider for a prior whose
    components reach further (3.5 sd beyond their means)."""
    prior = prior.as_mixture()
    sd = prior.covariances[:, d, d].clamp_min(0).sqrt()
    reach = max(4.0, ((prior.means[:, d].abs() + 3.5 * sd).max().item()))
    return -reach, reach


def _mark_prior(ax, prior: Prior, d: int, grid: np.ndarray):
    """The true prior's marginal in dimension d: its density, and each point mass as a stem
    labelled with its probability (the spike of a spike-and-slab prior)."""
    color = "#c0392b"
    label = "N(0, 1)" if isinstance(prior, StandardGaussian) else "true prior"
    prior = prior.as_mixture()
    weights = prior.weights.numpy()
    means, variances = prior.means[:, d].numpy(), prior.covariances[:, d, d].numpy()
    smooth = variances > 0
    density = (
        weights[smooth, None]
        * np.exp(-((grid - means[smooth, None]) ** 2) / (2 * variances[smooth, None]))
        / np.sqrt(2 * np.pi * variances[smooth, None])
    ).sum(0)
    ax.plot(grid, density, color=color, lw=1, label=label)
    for location in np.unique(means[~smooth]):
        mass = weights[~smooth][means[~smooth] == location].sum()
        ax.axvline(location, color=color, lw=1.5, alpha=0.6)
        ax.text(location, 0.95, f" P(w={location:g}) = {mass:.2f}", color=color, fontsize=6,
                transform=ax.get_xaxis_transform(), va="top")  # fmt: skip


def posterior_marginals_figure(
    samples: pd.DataFrame, reference: pd.DataFrame, true_w: dict[str, np.ndarray], pool_size: str, n_dims: int,
    seed: int, prior: TaskFamily,
) -> plt.Figure:  # fmt: skip
    """Rows: posterior targets (the first prefix from T_true and, for a pool, from T_M) x the
    first dimensions of w; columns: checkpoints. The PFN's resampled w_hat beside every exact
    reference resampler (Gaussian prior, the true prior when it is another, the run's pool),
    the true task marked."""
    style()
    posts = samples[(samples.kind == "posterior") & (samples.prefix == 0)]
    reference = reference[(reference.kind == "posterior") & (reference.prefix == 0) & (reference.replica == 0)]
    targets = [t for t in ("true", "pool") if t in set(posts.tasks)]
    dims = [d for d in range(n_dims) if f"w_{d}" in samples.columns]
    steps = sorted(posts.step.unique())
    rows = [(t, d) for t in targets for d in dims]
    fig, axes = plt.subplots(len(rows), len(steps), figsize=(2.8 * len(steps), 2.0 * len(rows)), squeeze=False)
    for row, (tasks, d) in enumerate(rows):
        col_name = f"w_{d}"
        refs = reference[reference.tasks == tasks]
        ref_values = {  # per path length, the references drawn beside a step's samples
            length: [
                (g[col_name].to_numpy(), *roles.reference_style(role, prior))
                for role, g in at_length.groupby("reference", sort=False)
            ]
            for length, at_length in refs.groupby("path_length")
        }
        every = [v for drawn in ref_values.values() for v, *_ in drawn]
        pooled = np.concatenate([posts.loc[posts.tasks == tasks, col_name].to_numpy(), *every])
        lo, hi = np.quantile(pooled, [0.005, 0.995])
        pad = 0.1 * (hi - lo)
        for col, step in enumerate(steps):
            ax = axes[row, col]
            at_step = posts[(posts.tasks == tasks) & (posts.step == step)]
            length = at_step.path_length.iloc[0]
            marginal_panel(ax, at_step[col_name].to_numpy(), ref_values[length], (lo - pad, hi + pad))
            ax.axvline(true_w[tasks][d], color="#c0392b", lw=1.2, label="true task")
            ax.set_ylabel(f"{'$T_{true}$' if tasks == 'true' else '$T_M$'} prefix, $w_{{{d}}}$" if col == 0 else "")
    title = (
        f"Posterior marginals of the PFN trained on M = {pool_label(pool_size)} tasks (seed {seed}): which Bayesian?"
    )
    lengths = posts.groupby("step").path_length.first().to_dict()
    return finish_checkpoint_grid(fig, axes, steps, "$\\hat w$", title, lengths)


def posterior_figure(summary: pd.DataFrame, prior: TaskFamily) -> plt.Figure:
    """The PFN's resampled posteriors on new tasks against the exact reference resamplers.

    Energy distance per dimension, averaged over dimensions, T_true prefixes and seeds
    (:func:`lrpfn.implied.posterior_summary`, tables/posterior_summary). Left: at
    the final checkpoint, vs M, the distance to each exact reference (the true prior's
    Bayes, its moment-matched Gaussian's when that is another, the pool's), each beside its
    floor (exact replicas' distance to it). Then, one panel per reference: across
    checkpoints, one line per M, with the floors as shaded bands.
    """
    style()
    mean = summary[summary.seed == "mean"]
    sizes = sorted(mean.pool_size.unique(), key=float)
    palette = dict(zip(sizes, sns.color_palette("viridis", len(sizes)), strict=True))
    references = [role for role in ("ridge", "bayes", "dmmse") if role in set(mean.reference) or role == "dmmse"]
    names = {role: roles.reference_label(role, prior).removeprefix("exact, ") + " reference" for role in references}
    colors = {role: roles.reference_style(role, prior)[0] for role in references}
    fig, axes = plt.subplots(1, 1 + len(references), figsize=(4.7 * (1 + len(references)), 4))
    final = mean[mean.final]
    positions, inf_x = pool_axis(pd.Series(sizes))
    ax = axes[0]
    for reference in references:
        rows = final[final.reference == reference].set_index("pool_size").reindex(sizes)
        ax.plot(positions, rows.energy, "o-", color=colors[reference], label=f"PFN to the {names[reference]}")
        ax.errorbar(
            positions, rows.floor_energy, yerr=2 * rows.floor_energy_sd, fmt="_", ms=12, mew=2, capsize=3,
            color=colors[reference], label="exact vs exact floor (± 2 sd over replicas)",
        )  # fmt: skip
    format_pool_axis(ax, pd.Series(sizes), inf_x)
    ax.set_ylabel("energy distance (mean over dims)")
    ax.set_title("final checkpoint", fontsize=9)
    ax.legend(fontsize=7)
    for ax, reference in zip(axes[1:], references, strict=True):
        sub = mean[mean.reference == reference]
        for pool_size in sizes:
            curve = sub[sub.pool_size == pool_size].set_index("step")
            label = f"M = {pool_label(pool_size)}"
            if len(curve):
                ax.plot(curve.index, curve.energy, "o-", ms=3, color=palette[pool_size], label=label)
                ax.fill_between(curve.index, 0, curve.floor_energy, color=palette[pool_size], alpha=0.12, lw=0)
            else:  # M = inf has no pool: in the legend all the same
                ax.plot([], [], "o-", ms=3, color=palette[pool_size], label=f"{label} (no pool)")
        ax.set_xscale("log")
        ax.set_xlabel("training step")
        ax.set_title(f"to the {names[reference]}", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle("Resampled posteriors on new tasks: which exact Bayesian do they resemble?")
    fig.tight_layout()
    return fig
