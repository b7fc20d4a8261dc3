"""Figures draw what their tables hold: the summary tables they read are computed by tested
functions, and each figure function plots those columns, labelled by role."""

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch

from lrpfn.buckets import BarDistribution, prior_borders
from lrpfn.config import PriorConfig
from lrpfn.evaluate import METRICS
from lrpfn.exact import references
from lrpfn.implied import posterior_summary
from lrpfn.model import PFN, ModelConfig
from lrpfn.plots.predictive import predictive_density_figure
from lrpfn.plots.resampling import implied_prior_figure, posterior_figure
from lrpfn.plots.sweep import in_context_figure, losses_figure, task_diversity_figure
from lrpfn.predictive import compare, prompts
from lrpfn.priors import Pool, StandardGaussian
from lrpfn.sweep import over_seeds, smooth_loss
from lrpfn.tasks import eval_set, master_pool

matplotlib.use("Agg")

DEFAULT = PriorConfig()
SPIKE = PriorConfig.from_dict({"kind": "spike_slab", "p_zero": 0.5, "slab_var": 1.0})
SIZES = ("1", "16", "inf")


def summary(seed_count: int = 2) -> pd.DataFrame:
    """Per-run summaries over positions, random but seeded, with dMMSE NaN at M = inf."""
    rng = np.random.default_rng(1)
    rows = []
    for m in SIZES:
        for seed in range(seed_count):
            for step in (10, 20):
                for tasks in ("pool", "true"):
                    row = {"pool_size": m, "seed": seed, "step": step, "tasks": tasks}
                    row |= {name: rng.random() + 0.01 for name in METRICS}
                    if m == "inf":
                        row |= {name: np.nan for name in METRICS if name.endswith("_dmmse")}
                    rows.append(row)
    return pd.DataFrame(rows)


def thresholds() -> pd.DataFrame:
    common = {"baseline": "bayes", "seeds": "all", "lower": np.nan, "upper": np.nan, "reason": "", "description": ""}
    return pd.DataFrame(
        [
            common | {"method": "closer_to_bayes", "pool_size_star": 16.0, "budgets": "", "long_step": 20},
            common | {"method": "budget_crossing", "pool_size_star": np.nan, "budgets": "checkpoints", "long_step": 20},
        ]
    )


def labels(ax) -> list[str]:
    return [text.get_text() for text in ax.get_legend().get_texts()] if ax.get_legend() else []


@pytest.mark.parametrize("prior", [DEFAULT, SPIKE], ids=["default", "spike_slab"])
def test_the_task_diversity_figure_draws_the_seed_means_at_the_final_step(prior):
    seeds = over_seeds(summary(), ["pool_size", "step", "tasks"], METRICS)
    fig = task_diversity_figure(seeds, thresholds(), prior)
    ax = fig.axes[0]  # MSE/D on T_M
    final = seeds[seeds.final & (seeds.tasks == "pool")]
    pfn = ax.containers[0]  # the PFN's error bars come first
    np.testing.assert_allclose(np.sort(pfn.lines[0].get_ydata()), np.sort(final.mse_model.to_numpy()))
    legend = labels(ax)
    if prior.is_default:
        assert legend == ["PFN", "dMMSE", "ridge"]
    else:
        assert legend == ["PFN", "dMMSE", "ridge (moment-matched)", "Bayes (spike-and-slab)"]
    assert fig.axes[2].get_title() == f"PFN – {'ridge' if prior.is_default else 'Bayes (spike-and-slab)'}"


def test_the_losses_figure_draws_the_smoothed_loss_and_the_seed_mean_nll():
    seeds = over_seeds(summary(), ["pool_size", "step", "tasks"], METRICS)
    logs = []
    for m in SIZES:
        for seed in (0, 1):
            log = pd.DataFrame({"step": range(1, 301), "loss": np.linspace(3, 1, 300) + 0.1 * seed, "lr": 1e-3})
            logs.append(log.assign(pool_size=m, seed=seed, loss_smooth=smooth_loss(log)))
    logs = pd.concat(logs, ignore_index=True)
    fig = losses_figure(logs, seeds)
    ax = fig.axes[0]  # M = 1
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), logs[(logs.pool_size == "1") & (logs.seed == 0)].loss_smooth)
    eval_nll = seeds[(seeds.pool_size == "1") & (seeds.tasks == "pool")].sort_values("step").nll_model
    np.testing.assert_array_equal(ax.lines[2].get_ydata(), eval_nll)


def test_the_in_context_figure_draws_the_seed_means_per_position():
    rng = np.random.default_rng(2)
    rows = [
        {"pool_size": m, "seed": seed, "step": 20, "tasks": tasks, "position": i}
        | {name: rng.random() + 0.01 for name in METRICS}
        for m in SIZES for seed in (0, 1) for tasks in ("pool", "true") for i in range(8)
    ]  # fmt: skip
    seeds = over_seeds(pd.DataFrame(rows), ["pool_size", "tasks", "position"], METRICS)
    fig = in_context_figure(seeds, 4, DEFAULT)
    curve = seeds[(seeds.pool_size == "1") & (seeds.tasks == "pool")].sort_values("position")
    np.testing.assert_array_equal(fig.axes[0].lines[0].get_ydata(), curve.mse_model)


def stats() -> pd.DataFrame:
    """Resampling statistics of two seeds: prior rows and T_M rows, which the summary skips,
    beside T_true posterior rows; the final step's paths are twice as long."""
    rng = np.random.default_rng(3)
    rows = []
    for m in ("4", "inf"):
        for seed in (0, 1):
            for reference in ("bayes", "dmmse") if m != "inf" else ("bayes",):
                for step in (10, 20):
                    for kind, tasks, prefix in (("prior", "", -1), ("posterior", "true", 0), ("posterior", "true", 1),
                                                ("posterior", "pool", 0)):  # fmt: skip
                        for dim in (0, 1):
                            rows.append(
                                {"pool_size": m, "seed": seed, "step": step, "path_length": 8 * step // 10,
                                 "kind": kind, "tasks": tasks,
                                 "prefix": prefix, "reference": reference, "dim": dim, "energy": rng.random(),
                                 "floor_energy": rng.random() / 10, "floor_energy_sd": rng.random() / 100}
                            )  # fmt: skip
    return pd.DataFrame(rows)


def test_the_posterior_summary_averages_true_task_posteriors_over_dims_prefixes_and_seeds():
    table = stats()
    out = posterior_summary(table)
    post = table[(table.kind == "posterior") & (table.tasks == "true")]
    for row in out[out.seed != "mean"].itertuples():
        rows = post[(post.pool_size == row.pool_size) & (post.seed == int(row.seed)) & (post.reference == row.reference)
                    & (post.step == row.step)]  # fmt: skip
        assert row.n_rows == 4 and row.energy == pytest.approx(rows.energy.mean(), rel=1e-12)
    for row in out[out.seed == "mean"].itertuples():
        rows = post[(post.pool_size == row.pool_size) & (post.reference == row.reference) & (post.step == row.step)]
        assert row.n_rows == 8 and row.energy == pytest.approx(rows.energy.mean(), rel=1e-12)
        assert row.floor_energy_sd == pytest.approx(rows.floor_energy_sd.mean(), rel=1e-12)
    assert set(out[out.final].step) == {20} and set(out[out.final].path_length) == {16}


def test_the_posterior_figure_draws_the_summary_at_the_final_step():
    out = posterior_summary(stats())
    fig = posterior_figure(out, DEFAULT)
    final = out[(out.seed == "mean") & out.final & (out.reference == "bayes")].sort_values("pool_size_value")
    np.testing.assert_array_equal(fig.axes[0].lines[0].get_ydata(), final.energy)
    assert "PFN to the Gaussian prior reference" in labels(fig.axes[0])


def test_the_predictive_density_figure_draws_the_compared_densities():
    """From a real comparison (a small random PFN against ridge and a pool): each panel draws the
    table's density columns, one line per distinct exact predictive, and prints its KL."""
    torch.manual_seed(0)
    prior = StandardGaussian(2)
    model = PFN(ModelConfig(dim=2, n_buckets=16, d_model=16, n_layers=1, n_heads=2, d_mlp=16)).eval()
    bar = BarDistribution(prior_borders(16, 0.1, prior, n_samples=1 << 14))
    pool = Pool(master_pool(4, 0, prior))
    batch = eval_set(1, 5, 0.1, prior, seed=1)
    kl, density = compare({10: model}, bar, prompts({"true": batch}, 1, [0, 3]), references(prior, pool, 0.1))
    fig = predictive_density_figure(density, kl, "4", 0, DEFAULT)
    ax = fig.axes[1]  # the prompt with 3 pairs
    curve = density[density.prompt_length == 3]
    assert [line.get_label() for line in ax.lines] == ["PFN", "exact, Gaussian prior", "exact, pool prior"]
    np.testing.assert_array_equal(ax.lines[1].get_ydata(), curve.density_ridge)
    np.testing.assert_array_equal(ax.lines[2].get_ydata(), curve.density_dmmse)
    text = ax.texts[0].get_text()
    assert f"KL(ridge) {kl.kl_ridge.iloc[1]:.3f}" in text and f"KL(dMMSE) {kl.kl_dmmse.iloc[1]:.3f}" in text


def test_the_implied_prior_figure_adds_the_residual_variance_where_tasks_draw_their_noise():
    rng = np.random.default_rng(0)

    def paths(kind_scale: float, **keys) -> pd.DataFrame:
        n = 401  # odd: the median of the logs is the log of the median
        return pd.DataFrame(
            {"step": 10, "path_length": 8, "kind": "prior", "tasks": "", "prefix": -1, "path": np.arange(n)}
            | keys
            | {"w_0": rng.normal(size=n), "w_1": rng.normal(size=n), "noise_var": kind_scale * rng.gamma(4.0, size=n)}
        )

    samples = paths(2.0)
    reference = pd.concat([paths(1.0, reference=name, replica=0) for name in ("bayes", "ridge")])
    fig = implied_prior_figure(samples, reference, None, "inf", 2, 0, StandardGaussian(2))
    axes = np.array(fig.axes).reshape(3, 1)
    assert "residual variance" in axes[2, 0].get_xlabel()
    medians = sorted(line.get_xdata()[0] for line in axes[2, 0].get_lines())
    exact = reference[reference.reference == "bayes"].noise_var
    assert medians == pytest.approx(sorted(np.log10([samples.noise_var.median(), exact.median()])))
    # Without the column, the w rows only.
    assert (
        len(
            implied_prior_figure(
                samples.drop(columns="noise_var"), reference, None, "inf", 2, 0, StandardGaussian(2)
            ).axes
        )
        == 2
    )
