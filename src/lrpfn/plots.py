"""Figures (SPEC §8), each drawn from the pipeline's parquet tables."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.colors import ListedColormap

from .io import atomic_path
from .model import interleaved_mask
from .priors import GaussianMixture

COLORS = {"model": "#1f4e99", "dmmse": "#d95f02", "ridge": "#1b9e77", "bayes": "#7b3294"}
LABELS = {"model": "PFN", "dmmse": "dMMSE", "ridge": "ridge", "bayes": "Bayes (true prior)"}
TASKS_TITLE = {"pool": "pretraining tasks $T_M$", "true": "new tasks $T_{true}$"}
# Under a true prior other than N(0, I) (a 'bayes' predictor or reference in the table), ridge
# and the 'gaussian' reference are the Gaussian with the prior's mean and covariance.
MOMENT_MATCHED = "ridge (moment-matched)"


def _predictors(columns, bayes_label: str) -> tuple[list[str], dict[str, str]]:
    """The predictors a table has columns for (model, dMMSE, ridge and, under a true prior,
    its Bayes predictor) and their labels."""
    if not any(str(c).endswith("_bayes") for c in columns):
        return ["model", "dmmse", "ridge"], dict(LABELS)
    return ["model", "dmmse", "ridge", "bayes"], LABELS | {"ridge": MOMENT_MATCHED, "bayes": bayes_label}


def _generalising(names: list[str]) -> str:
    """The predictor the PFN should approach on new tasks: the true prior's Bayes predictor."""
    return "bayes" if "bayes" in names else "ridge"


def _reference_styles(bayes_label: str) -> dict[str, tuple[str, str, str]]:
    """(colour, line style, label) of each exact reference resampler or predictive."""
    return {
        "gaussian": (COLORS["ridge"], "--", "exact, Gaussian prior"),
        "bayes": (COLORS["bayes"], "-.", f"exact, {bayes_label.removeprefix('Bayes ').strip('()')} prior"),
        "pool": (COLORS["dmmse"], ":", "exact, pool prior"),
    }


def _moment_matched(styles: dict, present) -> dict:
    """Relabel the Gaussian reference as moment-matched when the true prior's is present."""
    if "bayes" in set(present):
        color, ls, _ = styles["gaussian"]
        return styles | {"gaussian": (color, ls, "exact, moment-matched Gaussian")}
    return styles


def _style():
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.0)


def _pool_label(pool_size: str) -> str:
    return "∞" if pool_size == "inf" else pool_size


def _finish_checkpoint_grid(fig: plt.Figure, axes, steps, xlabel: str, title: str) -> plt.Figure:
    """A grid with one column per checkpoint: step titles on top, x labels below, the legend
    in the top-right panel, the figure's title."""
    for ax, step in zip(axes[0], steps, strict=True):
        ax.set_title(f"step {step}")
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


def mask_figure(n_pairs: int = 4) -> plt.Figure:
    """The attention mask in interleaved order; query rows (where the loss is taken) darker."""
    _style()
    mask = interleaved_mask(n_pairs).numpy().astype(int)
    shade = mask.copy()
    shade[0::2] *= 2  # query rows: q_i sits at even indices
    labels = [f"${r}_{{{i + 1}}}$" for i in range(n_pairs) for r in ("q", "p")]
    fig, ax = plt.subplots(figsize=(3.6, 3.6))
    ax.imshow(shade, cmap=ListedColormap(["#ffffff", "#9ecae1", "#08519c"]), vmin=0, vmax=2)
    ax.set_xticks(range(2 * n_pairs), labels)
    ax.set_yticks(range(2 * n_pairs), labels)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    ax.set_xticks(np.arange(-0.5, 2 * n_pairs), minor=True)
    ax.set_yticks(np.arange(-0.5, 2 * n_pairs), minor=True)
    ax.grid(which="minor", color="#cccccc", linewidth=0.5)
    ax.grid(which="major", visible=False)
    ax.set_title("Autoregressive PFN mask\n(dark rows: query tokens, where the loss is taken)", fontsize=9)
    return fig


def _pool_axis(sizes: pd.Series) -> tuple[np.ndarray, float | None]:
    """x positions for pool sizes on a log axis; inf sits 4x beyond the largest finite size."""
    values = sizes.astype(float).to_numpy()
    finite = values[np.isfinite(values)]
    inf_x = (finite.max() * 4 if len(finite) else 1.0) if np.isinf(values).any() else None
    return np.where(np.isinf(values), inf_x if inf_x else np.nan, values), inf_x


def _format_pool_axis(ax, sizes, inf_x):
    ax.set_xscale("log", base=2)
    ticks = sorted({float(s) for s in sizes})
    finite = [t for t in ticks if math.isfinite(t)]
    positions = finite + ([inf_x] if inf_x else [])
    labels = [f"$2^{{{round(math.log2(t))}}}$" if t > 0 and math.log2(t).is_integer() else f"{t:g}" for t in finite]
    ax.set_xticks(positions, labels + (["$\\infty$"] if inf_x else []))
    ax.minorticks_off()
    ax.set_xlabel("number of pretraining tasks $M$")


def task_diversity_figure(
    summary: pd.DataFrame, thresholds: pd.DataFrame, bayes_label: str = LABELS["bayes"]
) -> plt.Figure:
    """2x3: rows T_M / T_true; MSE/D vs M, model-dMMSE and model-ridge differences vs M
    (under a true prior other than N(0, I): its Bayes predictor beside the moment-matched
    ridge, and the difference to that Bayes predictor)."""
    _style()
    names, labels = _predictors(summary.columns, bayes_label)
    generalising = _generalising(names)
    final_step = summary.groupby("pool_size").step.transform("max")
    final = summary[summary.step == final_step]
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5), sharex=True)
    steps = sorted(summary.step.unique())
    palette = sns.color_palette("Blues", len(steps) + 1)[1:]
    for row, tasks in enumerate(["pool", "true"]):
        data = final[final.tasks == tasks]
        mse = [f"mse_{name}" for name in names]
        stats = data.groupby("pool_size", sort=False)[mse].agg(["mean", "std"]).reset_index()
        x, inf_x = _pool_axis(stats["pool_size"])
        order = np.argsort(x)
        ax = axes[row, 0]
        for name in names:
            col = f"mse_{name}"
            ax.errorbar(
                x[order],
                stats[(col, "mean")].to_numpy()[order],
                yerr=stats[(col, "std")].fillna(0).to_numpy()[order],
                marker="o", ms=4, capsize=2, color=COLORS[name], label=labels[name],
            )  # fmt: skip
        ax.set_ylabel(f"MSE/D on {TASKS_TITLE[tasks]}")
        ax.legend(fontsize=8)
        for col, ax, title in (
            (1, axes[row, 1], "PFN – dMMSE"),
            (2, axes[row, 2], f"PFN – {labels[generalising]}"),
        ):
            metric = "delta_dmmse" if col == 1 else f"delta_{generalising}"
            sub = summary[summary.tasks == tasks]
            for color, step in zip(palette, steps, strict=True):
                at = sub[sub.step == step].groupby("pool_size", sort=False)[metric].mean().reset_index()
                xs, _ = _pool_axis(at["pool_size"])
                o = np.argsort(xs)
                ax.plot(xs[o], at[metric].to_numpy()[o], marker="o", ms=3, color=color, label=f"step {step}")
            ax.set_yscale("log")
            ax.set_ylabel(f"{title}, mean sq. diff. / D")
            if row == 0:
                ax.set_title(title)
        for ax in axes[row]:
            _format_pool_axis(ax, summary["pool_size"], inf_x)
            _mark_thresholds(ax, thresholds)
        axes[row, 2].legend(fontsize=7, title="checkpoint", title_fontsize=7)
    axes[0, 0].set_title("MSE/D")
    target = "ridge (the true prior)" if generalising == "ridge" else f"{labels['bayes']}, the true prior's predictor"
    fig.suptitle(f"Task diversity: the PFN moves from dMMSE (memorising the pool) to {target}")
    fig.tight_layout()
    return fig


def _mark_thresholds(ax, thresholds: pd.DataFrame):
    """M* (all seeds together) as a vertical line; an unresolved closer-to-ridge estimate as its
    shaded bracket. The budget crossing's label says whether it compared two runs or a proxy."""
    for _, row in thresholds[thresholds.seeds == "all"].iterrows():
        if row.method.startswith("closer_to_"):
            ls, label = "-", f"M* (closer to {'ridge' if row.method == 'closer_to_ridge' else 'Bayes'})"
        else:
            budgets = "checkpoint proxy" if "proxy" in row.description else "two budgets"
            ls, label = "--", f"M* (budget crossing, {budgets})"
        if np.isfinite(row.pool_size_star):
            ax.axvline(row.pool_size_star, color="0.3", ls=ls, lw=1, label=label)
        elif row.method.startswith("closer_to_") and np.isfinite(row.lower) and np.isfinite(row.upper):
            ax.axvspan(row.lower, row.upper, color="0.85", zorder=0, label="M* bracket (unresolved)")


def losses_figure(logs: pd.DataFrame, summary: pd.DataFrame) -> plt.Figure:
    """Per M: training loss (smoothed) and evaluation NLL at checkpoints, with the Bayes floor."""
    _style()
    sizes = sorted(logs.pool_size.unique(), key=float)
    cols = min(4, len(sizes))
    rows = math.ceil(len(sizes) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.8 * rows), squeeze=False, sharey=True)
    for ax, pool_size in zip(axes.flat, sizes, strict=False):  # the grid may have spare panels
        for seed, log in logs[logs.pool_size == pool_size].groupby("seed"):
            window = max(1, len(log) // 100)
            ax.plot(log.step, log.loss.rolling(window, min_periods=1).mean(), color="0.5", lw=0.8,
                    label="train loss" if seed == logs.seed.min() else None)  # fmt: skip
        ev = summary[(summary.pool_size == pool_size) & (summary.tasks == "pool")].groupby("step")
        generalising = _generalising(_predictors(summary.columns, "")[0])
        nll = ev[["nll_model", "nll_dmmse", f"nll_{generalising}"]].mean()
        ax.plot(nll.index, nll.nll_model, "o-", color=COLORS["model"], ms=4, label="eval NLL on $T_M$")
        floor = nll[f"nll_{generalising}"] if pool_size == "inf" else nll.nll_dmmse
        ax.axhline(floor.iloc[-1], color=COLORS[generalising if pool_size == "inf" else "dmmse"], ls="--", lw=1,
                   label="Bayes NLL floor")  # fmt: skip
        ax.set_xscale("log")
        ax.set_title(f"M = {_pool_label(pool_size)}")
        ax.set_xlabel("training step")
    for ax in axes.flat[len(sizes) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("NLL (nats / position)")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("Training loss and evaluation NLL per pool size")
    fig.tight_layout()
    return fig


def implied_prior_figure(
    samples: pd.DataFrame,
    reference: pd.DataFrame,
    pool: np.ndarray | None,
    pool_size: str,
    n_dims: int,
    seed: int,
    prior: GaussianMixture | None = None,
) -> plt.Figure:
    """Rows: the first dimensions of w; columns: checkpoints. Histogram + KDE of the PFN's
    resampled w_hat (implied prior) beside the exact reference resampler of the run's prior
    (and, for a pool, of the true prior), the true prior's marginal — N(0, 1), or a
    Gaussian-mixture ``prior``'s density with its point masses (a spike) marked — and the
    pool's values."""
    _style()
    samples = samples[samples.kind == "prior"]
    reference = reference[(reference.kind == "prior") & (reference.replica == 0)]
    # (samples, colour, line style, label) of each exact reference drawn: the run's own prior
    # first, and beside a pool's the true prior's; beside the true prior's, under a prior
    # other than N(0, I), the moment-matched Gaussian's.
    true = "bayes" if prior is not None else "gaussian"
    true_label = "true prior" if prior is not None else "Gaussian prior"
    if pool is None:
        references = [(reference[reference.prior == true], "black", "--", "exact reference")]
        if prior is not None:
            references.append(
                (reference[reference.prior == "gaussian"], "0.55", ":", "exact reference (moment-matched Gaussian)")
            )
    else:
        references = [
            (reference[reference.prior == "pool"], "black", "--", "exact reference (pool prior)"),
            (reference[reference.prior == true], "0.55", ":", f"exact reference ({true_label})"),
        ]
    steps = sorted(samples.step.unique())
    dims = [d for d in range(n_dims) if f"w_{d}" in samples.columns]
    fig, axes = plt.subplots(
        len(dims), len(steps), figsize=(2.8 * len(steps), 2.2 * len(dims)), squeeze=False, sharex=True
    )
    for row, d in enumerate(dims):
        col_name = f"w_{d}"
        span = _prior_span(prior, d)
        grid = np.linspace(*span, 400)
        for col, step in enumerate(steps):
            ax = axes[row, col]
            values = samples.loc[samples.step == step, col_name].to_numpy()
            _marginal_panel(ax, values, [(r[col_name].to_numpy(), *style) for r, *style in references], span)
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
    label = _pool_label(pool_size)
    title = f"Implied prior of the PFN trained on M = {label} tasks (seed {seed}), by predictive resampling"
    return _finish_checkpoint_grid(fig, axes, steps, "$\\hat w$", title)


def _prior_span(prior: GaussianMixture | None, d: int) -> tuple[float, float]:
    """The w range of the implied-prior panels: (-4, 4) for N(0, 1), wider for a prior whose
    components reach further (3.5 sd beyond their means)."""
    if prior is None:
        return -4.0, 4.0
    sd = prior.covariances[:, d, d].clamp_min(0).sqrt()
    reach = max(4.0, ((prior.means[:, d].abs() + 3.5 * sd).max().item()))
    return -reach, reach


def _mark_prior(ax, prior: GaussianMixture | None, d: int, grid: np.ndarray):
    """The true prior's marginal in dimension d: its density, and each point mass as a stem
    labelled with its probability (the spike of a spike-and-slab prior)."""
    color = "#c0392b"
    if prior is None:
        ax.plot(grid, np.exp(-(grid**2) / 2) / np.sqrt(2 * np.pi), color=color, lw=1, label="N(0, 1)")
        return
    weights = prior.weights.numpy()
    means, variances = prior.means[:, d].numpy(), prior.covariances[:, d, d].numpy()
    smooth = variances > 0
    density = (
        weights[smooth, None]
        * np.exp(-((grid - means[smooth, None]) ** 2) / (2 * variances[smooth, None]))
        / np.sqrt(2 * np.pi * variances[smooth, None])
    ).sum(0)
    ax.plot(grid, density, color=color, lw=1, label="true prior")
    for location in np.unique(means[~smooth]):
        mass = weights[~smooth][means[~smooth] == location].sum()
        ax.axvline(location, color=color, lw=1.5, alpha=0.6)
        ax.text(location, 0.95, f" P(w={location:g}) = {mass:.2f}", color=color, fontsize=6,
                transform=ax.get_xaxis_transform(), va="top")  # fmt: skip


def _marginal_panel(ax, values: np.ndarray, references: list[tuple], span: tuple[float, float]):
    """Histogram and KDE of the PFN's w_hat in one dimension, with a KDE of each exact
    reference's (values, colour, line style, label) over the same span."""
    ax.hist(values, bins=np.linspace(*span, 61), density=True, color=COLORS["model"], alpha=0.35,
            label="PFN (histogram)")  # fmt: skip
    sns.kdeplot(x=values, ax=ax, color=COLORS["model"], lw=1.2, label="PFN (KDE)", clip=span)
    for ref, color, ls, label in references:
        sns.kdeplot(x=ref, ax=ax, color=color, lw=1, ls=ls, label=label, clip=span)
    ax.set_xlim(*span)


def posterior_marginals_figure(
    samples: pd.DataFrame, reference: pd.DataFrame, true_w: dict[str, np.ndarray], pool_size: str, n_dims: int,
    seed: int, bayes_label: str = LABELS["bayes"],
) -> plt.Figure:  # fmt: skip
    """Rows: posterior targets (the first prefix from T_true and, for a pool, from T_M) x the
    first dimensions of w; columns: checkpoints. The PFN's resampled w_hat beside every exact
    reference resampler (Gaussian prior, the true prior when it is another, the run's pool),
    the true task marked."""
    _style()
    posts = samples[(samples.kind == "posterior") & (samples.prefix == 0)]
    reference = reference[(reference.kind == "posterior") & (reference.prefix == 0) & (reference.replica == 0)]
    styles = _moment_matched(_reference_styles(bayes_label), reference.prior)
    targets = [t for t in ("true", "pool") if t in set(posts.tasks)]
    dims = [d for d in range(n_dims) if f"w_{d}" in samples.columns]
    steps = sorted(posts.step.unique())
    rows = [(t, d) for t in targets for d in dims]
    fig, axes = plt.subplots(len(rows), len(steps), figsize=(2.8 * len(steps), 2.0 * len(rows)), squeeze=False)
    for row, (tasks, d) in enumerate(rows):
        col_name = f"w_{d}"
        refs = reference[reference.tasks == tasks]
        ref_values = [(g[col_name].to_numpy(), *styles[p]) for p, g in refs.groupby("prior", sort=False)]
        pooled = np.concatenate([posts.loc[posts.tasks == tasks, col_name].to_numpy(), *(v for v, *_ in ref_values)])
        lo, hi = np.quantile(pooled, [0.005, 0.995])
        pad = 0.1 * (hi - lo)
        for col, step in enumerate(steps):
            ax = axes[row, col]
            values = posts.loc[(posts.tasks == tasks) & (posts.step == step), col_name].to_numpy()
            _marginal_panel(ax, values, ref_values, (lo - pad, hi + pad))
            ax.axvline(true_w[tasks][d], color="#c0392b", lw=1.2, label="true task")
            ax.set_ylabel(f"{'$T_{true}$' if tasks == 'true' else '$T_M$'} prefix, $w_{{{d}}}$" if col == 0 else "")
    title = (
        f"Posterior marginals of the PFN trained on M = {_pool_label(pool_size)} tasks (seed {seed}): which Bayesian?"
    )
    return _finish_checkpoint_grid(fig, axes, steps, "$\\hat w$", title)


def posterior_figure(stats: pd.DataFrame, bayes_label: str = LABELS["bayes"]) -> plt.Figure:
    """The PFN's resampled posteriors on new tasks against the exact reference resamplers.

    Energy distance per dimension, averaged over dimensions and the T_true prefixes. Left: at
    the final checkpoint, vs M, the distance to the Gaussian-prior, (under another true prior)
    the true-prior and the pool-prior reference, each beside its floor (exact replicas'
    distance to it). Then, one panel per reference: across checkpoints, one line per M, with
    the floors as shaded bands.
    """
    _style()
    post = stats[(stats.kind == "posterior") & (stats.tasks == "true")]
    sizes = sorted(post.pool_size.unique(), key=float)
    palette = dict(zip(sizes, sns.color_palette("viridis", len(sizes)), strict=True))
    has_bayes = (post.reference == "bayes").any()
    references = ["gaussian", "bayes", "pool"] if has_bayes else ["gaussian", "pool"]
    names = {
        "gaussian": "moment-matched Gaussian reference" if has_bayes else "Gaussian-prior (ridge) reference",
        "bayes": f"true-prior reference ({bayes_label})",
        "pool": "pool-prior (dMMSE) reference",
    }
    colors = {name: COLORS[key] for name, key in (("gaussian", "ridge"), ("bayes", "bayes"), ("pool", "dmmse"))}
    fig, axes = plt.subplots(1, 1 + len(references), figsize=(4.7 * (1 + len(references)), 4))
    columns = ["energy", "floor_energy", "floor_energy_sd"]
    mean = post.groupby(["pool_size", "reference", "step"])[columns].mean().reset_index()
    final = mean[mean.step == mean.groupby("pool_size").step.transform("max")]
    positions, inf_x = _pool_axis(pd.Series(sizes))
    ax = axes[0]
    for reference in references:
        rows = final[final.reference == reference].set_index("pool_size").reindex(sizes)
        ax.plot(positions, rows.energy, "o-", color=colors[reference], label=f"PFN to the {names[reference]}")
        ax.errorbar(
            positions, rows.floor_energy, yerr=2 * rows.floor_energy_sd, fmt="_", ms=12, mew=2, capsize=3,
            color=colors[reference], label="exact vs exact floor (± 2 sd over replicas)",
        )  # fmt: skip
    _format_pool_axis(ax, pd.Series(sizes), inf_x)
    ax.set_ylabel("energy distance (mean over dims)")
    ax.set_title("final checkpoint", fontsize=9)
    ax.legend(fontsize=7)
    for ax, reference in zip(axes[1:], references, strict=True):
        sub = mean[mean.reference == reference]
        for pool_size in sizes:
            curve = sub[sub.pool_size == pool_size].set_index("step")
            label = f"M = {_pool_label(pool_size)}"
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


def in_context_figure(table: pd.DataFrame, context_length: int, bayes_label: str = LABELS["bayes"]) -> plt.Figure:
    """Columns: pool sizes; rows: MSE/D and NLL on T_M and on T_true, against the number of
    in-context examples, past the trained context length (dotted line). Lines are means over
    seeds: PFN, dMMSE (finite M), ridge and, under a true prior other than N(0, I), its
    Bayes predictor."""
    _style()
    names, labels = _predictors(table.columns, bayes_label)
    sizes = sorted(table.pool_size.unique(), key=float)
    rows = [("mse", "pool"), ("mse", "true"), ("nll", "pool"), ("nll", "true")]
    fig, axes = plt.subplots(
        len(rows), len(sizes), figsize=(2.5 * len(sizes), 2.1 * len(rows)), squeeze=False, sharex=True
    )
    for col, pool_size in enumerate(sizes):
        data = table[table.pool_size == pool_size]
        for row, (metric, tasks) in enumerate(rows):
            ax = axes[row, col]
            curve = data[data.tasks == tasks].groupby("position")[[f"{metric}_{name}" for name in names]].mean()
            for name in names:
                values = curve[f"{metric}_{name}"]
                if values.notna().any():
                    ax.plot(curve.index, values, color=COLORS[name], lw=1.2 if name == "model" else 1,
                            ls="-" if name == "model" else "--", label=labels[name])  # fmt: skip
            ax.axvline(context_length, color="0.4", ls=":", lw=1, label="trained length K")
            if metric == "mse":
                ax.set_yscale("log")
            if row == 0:
                ax.set_title(f"M = {_pool_label(pool_size)}")
            if col == 0:
                what = "MSE/D" if metric == "mse" else "NLL (nats)"
                ax.set_ylabel(f"{what}\non {TASKS_TITLE[tasks]}", fontsize=8)
        axes[-1, col].set_xlabel("in-context examples")
    axes[1, 0].legend(fontsize=7)  # the first pool size has all three predictors
    fig.suptitle("In-context curves: error vs number of examples, continued past the trained context length K (dotted)")
    fig.tight_layout()
    return fig


def predictive_density_figure(
    density: pd.DataFrame, kl: pd.DataFrame, pool_size: str, seed: int, bayes_label: str = LABELS["bayes"]
) -> plt.Figure:
    """Rows: prompts (evaluation set, sequence, observed pairs); columns: checkpoints. The
    PFN's bar-distribution density of y at the prompt's query beside the exact predictives
    under the Gaussian prior, (under another true prior) the true prior and (finite M) the
    pool prior, with KL(exact || PFN) in each panel."""
    _style()
    exact = [name for name in ("gaussian", "bayes", "pool") if f"density_{name}" in density.columns]
    styles = _moment_matched(_reference_styles(bayes_label), exact)
    short = {"gaussian": "Gauss", "bayes": "Bayes", "pool": "pool"}
    keys = ["tasks", "sequence", "prompt_length"]
    prompt_list = list(
        density[keys].drop_duplicates().sort_values(keys, ascending=[False, True, True]).itertuples(index=False)
    )
    steps = sorted(density.step.unique())
    fig, axes = plt.subplots(
        len(prompt_list), len(steps), figsize=(2.8 * len(steps), 1.9 * len(prompt_list)), squeeze=False
    )
    lines = [("model", COLORS["model"], "-", "PFN"), *((name, *styles[name]) for name in exact)]
    for row, (tasks, sequence, length) in enumerate(prompt_list):
        at_prompt = density[
            (density.tasks == tasks) & (density.sequence == sequence) & (density.prompt_length == length)
        ]
        for col, step in enumerate(steps):
            ax = axes[row, col]
            curve = at_prompt[at_prompt.step == step]
            shown = curve[[f"density_{name}" for name, *_ in lines]].max(axis=1)
            visible = curve.y[shown > 1e-3 * shown.max()]
            for name, color, ls, label in lines:
                if curve[f"density_{name}"].notna().any():
                    ax.plot(curve.y, curve[f"density_{name}"], color=color, ls=ls, lw=1.1, label=label)
            ax.set_xlim(visible.min(), visible.max())
            row_kl = kl[
                (kl.tasks == tasks) & (kl.sequence == sequence) & (kl.prompt_length == length) & (kl.step == step)
            ]
            text = "\n".join(
                f"KL({short[name]}) {row_kl[f'kl_{name}'].iloc[0]:.3f}"
                for name in exact
                if row_kl[f"kl_{name}"].notna().all()
            )
            ax.text(0.02, 0.97, text, transform=ax.transAxes, va="top", fontsize=6)
            if col == 0:
                where = "$T_{true}$" if tasks == "true" else "$T_M$"
                ax.set_ylabel(f"{where} #{sequence}, {length} pairs", fontsize=7)
    title = f"Predictive density of y at fixed prompts, PFN trained on M = {_pool_label(pool_size)} tasks (seed {seed})"
    return _finish_checkpoint_grid(fig, axes, steps, "y", title)
